#!/bin/sh
# A lab switch's ZTP client: ISC dhclient runs this as its hook on the switch's
# management port (eth0). It does what Cumulus Linux's ZTP does after DHCP:
# fetch the script named by option 239, run it only if it carries the
# CUMULUS-AUTOPROVISIONING marker, once. The management address is kept in
# its own routing table (like a management VRF) so the fabric's routes never
# carry management traffic and the other way round.
root=@ZTP_ROOT@
case "$reason" in BOUND|RENEW|REBIND|REBOOT) ;; *) exit 0 ;; esac
ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
ip rule del from "$new_ip_address" table 100 2>/dev/null
ip rule add from "$new_ip_address" table 100
ip route replace default via "${new_routers%% *}" dev "$interface" table 100
[ "$reason" = BOUND ] || exit 0
[ -e "$root/ztp-done" ] && exit 0
url=${new_cumulus_provision_url:-}
if [ -z "$url" ]; then
  echo "ztp: the lease names no provisioning script (option 239): nothing to run"
  exit 0
fi
echo "ztp: fetching $url"
if ! curl -fsS --retry 3 --interface "$new_ip_address" -o "$root/ztp-script" "$url"; then
  echo "ztp: fetching the script failed"
  exit 0
fi
if ! grep -q CUMULUS-AUTOPROVISIONING "$root/ztp-script"; then
  echo "ztp: the script lacks the CUMULUS-AUTOPROVISIONING marker: not run"
  exit 0
fi
chmod 0755 "$root/ztp-script"
touch "$root/ztp-done"
if ZTP_ROOT="$root" DROVER=@DROVER@ "$root/ztp-script" >@SCRIPT_LOG@ 2>&1; then
  echo "ztp: script succeeded"
else
  echo "ztp: script failed (exit $?): see @SCRIPT_LOG@"
fi
