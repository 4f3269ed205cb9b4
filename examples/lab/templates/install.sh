#!/bin/sh
# Install script for {{.Name}} ({{.Role}}{{with .Variant}}/{{.}}{{end}}) in {{.Zone}}/{{.Pod}}
hostname={{.Name}}
fqdn={{.FQDN}}
address={{.Address}}
