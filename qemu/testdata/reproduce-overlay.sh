#!/bin/sh
# Boots the same VM by hand: serial console on this terminal
# (Ctrl-A x quits, Ctrl-A c toggles the QEMU monitor), SSH forwarded
# from 127.0.0.1:$PORT to guest port 22. Written by the cca-testbed qemu package.
PORT=${PORT:-40022}
[ -e /run/vm1/root.qcow2 ] || qemu-img create -q -f qcow2 -F raw -b /cache/rootfs/root.img /run/vm1/root.qcow2 || exit 1
exec qemu-system-aarch64 -nodefaults -no-reboot -display none -M virt -cpu max,pauth-impdef=on -accel tcg,thread=multi -smp 1 -m 1024 -serial mon:stdio -drive if=none,id=d0,file=/run/vm1/root.qcow2,format=qcow2 -device virtio-blk-pci,drive=d0 -drive if=none,id=d1,file=/cache/modules.img,format=raw,readonly=on -device virtio-blk-pci,drive=d1 -netdev user,id=n0,hostfwd=tcp:127.0.0.1:"$PORT"-:22 -device virtio-net-pci,netdev=n0,romfile= -device virtio-rng-pci -kernel /cache/Image -append 'console=ttyAMA0 root=/dev/vda panic=-1'
