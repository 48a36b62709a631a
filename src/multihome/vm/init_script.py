"""The guest's /init: busybox, the NIC modules, addresses from the kernel command line.

Console: a shell on ttyS0 (`vm console`). Agent: a command loop on ttyS1 (`vm exec`):
the host writes `<id> <base64 script>` as one line, the guest answers
`MHBEGIN <id>`, the base64 of the script's stdout, `MHSTDERR <id>`, the base64 of its
stderr, `MHEND <id> <exit code>`. Base64 keeps arbitrary bytes from colliding with the
framing; the two streams stay apart so `vm exec` can hand each to its own fd.

Addresses: one `ip=<addr>::<gw>:<netmask>::<dev>:off` per NIC, the kernel's own
syntax (this kernel has no IP_PNP, so the kernel ignores it and /init applies it).
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
for p in $(cat /proc/cmdline); do
  case "$p" in
    ip=*)
      old="$IFS"; IFS=:; set -- ${p#ip=}; IFS="$old"
      a="$1"; gw="$3"; mask="$4"; dev="$6"
      ip link set "$dev" up
      [ -n "$a" ] && ip addr add "$a/$mask" dev "$dev"
      [ -n "$gw" ] && ip route add default via "$gw" dev "$dev"
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
