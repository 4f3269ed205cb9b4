// Package install is the contract between drover and a machine's install
// agent: the plan drover hands out with a one-time token, and the facts the
// agent reports back.
package install

// Plan is what a machine's install agent does.
type Plan struct {
	Name string `json:"name"`
	// Image is written to the target disk; nil for a profile that installs
	// by its own script (Script) instead.
	Image *Image `json:"image,omitempty"`
	// Script is the URL of the profile's rendered `install` template, run
	// with sh when the profile has no image.
	Script string `json:"script,omitempty"`
	// Seed is the cloud-init NoCloud seed written next to the image.
	Seed Seed `json:"seed"`
}

// Image is an artifact of the catalogue, addressed by its checksum.
type Image struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	URL     string `json:"url"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`   // bytes to download
	Format  string `json:"format"` // FormatRaw or FormatGzip
	// DiskBytes is how much of the disk the image covers once written.
	DiskBytes int64 `json:"disk_bytes"`
}

// Image formats.
const (
	FormatRaw  = "raw"
	FormatGzip = "raw.gz"
)

// Seed is a NoCloud seed: the three files cloud-init reads.
type Seed struct {
	MetaData      string `json:"meta-data"`
	UserData      string `json:"user-data"`
	NetworkConfig string `json:"network-config"`
}

// Neighbour is what one NIC heard over LLDP.
type Neighbour struct {
	Interface       string `json:"interface"`
	MAC             string `json:"mac"`
	ChassisID       string `json:"chassis_id,omitempty"`
	SystemName      string `json:"system_name,omitempty"`
	PortID          string `json:"port_id,omitempty"`
	PortDescription string `json:"port_description,omitempty"`
}
