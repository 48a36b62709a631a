"""The guest's /init: busybox, the NIC modules, addresses from the kernel command line.

Console: a shell on ttyS0 (`vm console`). Agent: a command loop on ttyS1 (`vm exec`):
the host writes `<id> <base64 script>` as one line, the guest answers
`MHBEGIN <id>`, the base64 of the script's stdout, `MHSTDERR <id>`, the base64 of its
stderr, `MHEND <id> <exit code>`. Base64 keeps arbitrary bytes from colliding with the
framing; the two streams stay apart so `vm exec` can hand each to its own fd.

Addresses: one `ip=<addr>::<gw>:<netmask>::<dev>:off` per NIC, the kernel's own
syntax (this kernel has no IP_PNP, so the kernel ignores it and /init applies it);
`ip=:::::<dev>:dhcp` asks busybox's udhcpc instead (the masquerade binding's DHCP
server), waiting for the lease before the next NIC so its default route comes first.
"""

READY_MARKER = "multihome-guest: ready"
BEGIN = "MHBEGIN"
STDERR = "MHSTDERR"
END = "MHEND"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /run
for m in $(cat /lib/mod/order); do insmod /lib/mod/$m 2>/dev/null; done
hostname "$(sed -n 's/.*mh.name=\([^ ]*\).*/\1/p' /proc/cmdline)"
ip link set lo up
# several NICs may share a subnet: answer ARP only on the NIC that owns the address
echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore
echo 2 > /proc/sys/net/ipv4/conf/all/arp_announce
for d in /sys/class/net/eth*; do ip link set "${d##*/}" up; done
cat > /bin/dhcp-event <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
EOF
chmod 755 /bin/dhcp-event
for p in $(cat /proc/cmdline); do
  case "$p" in
    ip=*)
      old="$IFS"; IFS=:; set -- ${p#ip=}; IFS="$old"
      a="$1"; gw="$3"; mask="$4"; dev="$6"; auto="$7"
      ip link set "$dev" up
      if [ "$auto" = dhcp ]; then
        udhcpc -i "$dev" -s /bin/dhcp-event -b -t 30 -T 1 -A 2 >/dev/null 2>&1
      else
        [ -n "$a" ] && ip addr add "$a/$mask" dev "$dev"
        [ -n "$gw" ] && ip route add default via "$gw" dev "$dev"
      fi
      ;;
  esac
done
agent() {
  stty -F /dev/ttyS1 raw -echo
  exec 3<>/dev/ttyS1
  while read -r id b64 <&3; do
    [ -n "$id" ] || continue
    echo "$b64" | base64 -d > /tmp/cmd
    sh /tmp/cmd </dev/null >/tmp/out 2>/tmp/err
    rc=$?
    { echo "MHBEGIN $id"; base64 /tmp/out; echo "MHSTDERR $id"; base64 /tmp/err
      echo "MHEND $id $rc"; } >&3
  done
}
agent &
echo "multihome-guest: ready"
while true; do setsid cttyhack sh; done
"""
