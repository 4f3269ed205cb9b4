package main

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	const systemdCgroup = "0::/system.slice/drover.service\n"
	tests := []struct {
		name       string
		setting    string
		gomemlimit string
		files      map[string]string
		want       int64
		wantFrom   string
		wantErr    string
	}{
		{name: "size in MiB", setting: "450MiB", want: 450 << 20, wantFrom: "--memory-limit"},
		{name: "size in GB", setting: "1.5GB", want: 1_500_000_000, wantFrom: "--memory-limit"},
		{name: "bytes", setting: "536870912", want: 512 << 20, wantFrom: "--memory-limit"},
		{name: "short unit", setting: "2g", want: 2 << 30, wantFrom: "--memory-limit"},
		{name: "off", setting: "off", wantFrom: "off"},
		{name: "unknown unit", setting: "450 parsecs", wantErr: `unknown unit "parsecs"`},
		{name: "not a number", setting: "lots", wantErr: `unknown unit "lots"`},
		{name: "no number", setting: "MiB", wantErr: "write a positive size"},
		{name: "too small", setting: "1MiB", wantErr: "at least 64MiB"},
		{name: "auto without cgroup", setting: "auto"},
		{name: "auto with GOMEMLIMIT", setting: "auto", gomemlimit: "400MiB", files: map[string]string{"/sys/fs/cgroup/memory.max": "1073741824\n"}, wantFrom: "GOMEMLIMIT"},
		{
			name: "auto under a systemd unit with MemoryMax", setting: "auto",
			files: map[string]string{
				"/proc/self/cgroup": systemdCgroup,
				"/sys/fs/cgroup/system.slice/drover.service/memory.max": "1073741824\n",
			},
			want: 966367641, wantFrom: "/sys/fs/cgroup/system.slice/drover.service/memory.max",
		},
		{
			name: "auto under a unit without a limit", setting: "auto",
			files: map[string]string{
				"/proc/self/cgroup": systemdCgroup,
				"/sys/fs/cgroup/system.slice/drover.service/memory.max": "max\n",
			},
		},
		{
			name: "auto in a container with its own cgroup namespace", setting: "",
			files: map[string]string{"/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "2147483648"},
			want:  1932735283, wantFrom: "/sys/fs/cgroup/memory.max",
		},
		{
			name: "auto under cgroup v1", setting: "auto",
			files: map[string]string{
				"/proc/self/cgroup": "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
				"/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1073741824",
			},
			want: 966367641, wantFrom: "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
		},
		{
			name: "auto under cgroup v1 without a limit", setting: "auto",
			files: map[string]string{
				"/proc/self/cgroup":                           "4:memory:/process_api/x\n",
				"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712",
			},
		},
		{
			name: "auto with an unreadable limit", setting: "auto",
			files:   map[string]string{"/sys/fs/cgroup/memory.max": "lots"},
			wantErr: `"lots" is not a byte count`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readFile := func(name string) ([]byte, error) {
				if v, ok := tt.files[name]; ok {
					return []byte(v), nil
				}
				return nil, fs.ErrNotExist
			}
			got, from, err := memoryLimit(tt.setting, tt.gomemlimit, readFile)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, errCgroupLimit) != (tt.setting == "auto") {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || from != tt.wantFrom {
				t.Fatalf("memoryLimit(%q) = %d from %q, want %d from %q", tt.setting, got, from, tt.want, tt.wantFrom)
			}
		})
	}
}
