#!/usr/bin/env bash
# An arm64 Python 3.11 with emolens's serving wheels, for `emulated_cpus.py --arm-root DIR`
# (run by hand, as root, on Debian 12 x86-64 with qemu-user installed):
#
#     bash benchmarks/arm_root.sh DIR
#
# DIR/sysroot: Debian's arm64 python3.11 and the libraries it needs, unpacked (not installed);
# DIR/site: the aarch64 wheels of the versions this machine's environment has. About 320 MB.
set -euo pipefail
root=$(realpath -m "${1:?usage: arm_root.sh DIR}")
mkdir -p "$root/debs" "$root/sysroot" "$root/site"

dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
packages=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances python3.11:arm64 libstdc++6:arm64 libgomp1:arm64 |
    grep -E '^[a-z0-9].*:arm64$' | grep -v -E '^(dpkg|tar|install-info):' | sort -u)
(cd "$root/debs" && apt-get download $packages >/dev/null)
for deb in "$root"/debs/*.deb; do dpkg -x "$deb" "$root/sysroot"; done

# the same versions as here, for the same answers
pins=$(python -m pip freeze | grep -i -E '^(numpy|opencv-python-headless|onnxruntime|pillow)==')
python -m pip install -q --target "$root/site" --only-binary=:all: --implementation cp --python-version 3.11 \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 $pins
qemu-aarch64 -L "$root/sysroot" "$root/sysroot/usr/bin/python3.11" -c 'import platform; print("arm64 Python", platform.python_version(), "ready")'
