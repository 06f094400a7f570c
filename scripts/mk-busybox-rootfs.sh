#!/usr/bin/env bash
# Make a minimal root filesystem from Debian's busybox-static package.
#
#   scripts/mk-busybox-rootfs.sh DIR
#
# DIR receives /bin/busybox (statically linked), one symlink per applet at the path busybox
# itself reports (`busybox --list-full`), /etc/passwd and /etc/group with root and nobody, and
# the empty directories a container runtime mounts over (/proc, /sys, /dev, /tmp). The binary
# comes from the busybox-static .deb (installed, or fetched with `apt-get download` when it is
# not), so nothing outside the repository and Debian's archive is needed. Idempotent: DIR is
# rebuilt from scratch in a temporary sibling and renamed into place, so a half-made rootfs is
# never left under DIR.
set -euo pipefail

dest=${1:?usage: $0 DIR}
dest=$(realpath -m "$dest")
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d "$dest.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

busybox=/bin/busybox
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
    # Not installed: take the binary out of the package without installing it.
    deb_dir=$(mktemp -d)
    (cd "$deb_dir" && apt-get download busybox-static >/dev/null)
    dpkg-deb -x "$deb_dir"/busybox-static_*.deb "$deb_dir/x"
    busybox="$deb_dir/x/bin/busybox"
fi
if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    # `file` may be missing on minimal hosts; fall back to asking the ELF loader.
    if ldd "$busybox" >/dev/null 2>&1; then
        echo "$0: $busybox is not statically linked; install busybox-static" >&2
        exit 1
    fi
fi

chmod 0755 "$tmp"
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home,mnt,opt,srv,var/tmp,run}
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 700 "$tmp/root"
install -m 0755 "$busybox" "$tmp/bin/busybox"

"$tmp/bin/busybox" --list-full | while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$tmp/$(dirname "$applet")"
    # Relative links keep the rootfs valid wherever it is mounted.
    rel=$(realpath -m --relative-to="$tmp/$(dirname "$applet")" "$tmp/bin/busybox")
    ln -sf "$rel" "$tmp/$applet"
done

cat > "$tmp/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$tmp/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
nogroup:x:65534:
GROUP
echo "berth-busybox" > "$tmp/etc/hostname"
: > "$tmp/etc/hosts"
: > "$tmp/etc/resolv.conf"

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
