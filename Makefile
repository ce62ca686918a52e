# folio: build, run and test.
#
#   make run        boot folio on QEMU virt (BOOTARGS, CPU, MEM, QEMU_EXTRA apply)
#   make run-rpi4   boot folio on QEMU raspi4b with the real Raspberry Pi 4 DTB
#   make test       host unit tests, then QEMU integration tests on every board,
#                   and folio under Linux KVM nested in QEMU (make test-kvm alone)
#   make rpi4       kernel8.img and config.txt for an SD card, in target/rpi4
#   make check      clippy (warnings are errors), rustfmt --check, and the
#                   kernel's disassembly free of FP/SIMD (tools/check-no-fp.sh)
#
# Every target first runs tools/setup.sh, which installs what is missing.

CARGO      ?= cargo
# EL0 programs use the hard-float target (their FP/SIMD registers are
# saved lazily, see docs/tasks.md); the kernel is built soft-float so that it
# never touches an FP/SIMD register outside the save and restore code
# (`make check` proves it on the disassembly: tools/check-no-fp.sh).
TARGET        := aarch64-unknown-none
KERNEL_TARGET := aarch64-unknown-none-softfloat
KERNEL_ELF    := target/$(KERNEL_TARGET)/release/folio
KERNEL_IMG := target/folio.img
RPI4_DTB   := fixtures/bcm2711-rpi-4-b.dtb

CPU        ?= cortex-a72
MEM        ?= 2G
BOOTARGS   ?=
QEMU_EXTRA ?=
TIMEOUT    ?= 120

SYSROOT     = $(shell rustc --print sysroot)
HOST        = $(shell rustc -vV | sed -n 's/^host: //p')
OBJCOPY     = $(SYSROOT)/lib/rustlib/$(HOST)/bin/llvm-objcopy

# The harness always runs QEMU with -semihosting and says so on the command
# line, so folio's exit status becomes QEMU's. -nic none: folio drives no
# network card, and QEMU's default one needs a boot ROM that a minimal
# install (--no-install-recommends) does not bring.
QEMU_COMMON = -nographic -no-reboot -semihosting -nic none
RUN_ARGS    = exit=semihosting $(BOOTARGS)

# Guests of 31 GiB and more need a RAM backend that is not reserved up
# front (the host has 24 GiB): only what the guest touches becomes resident.
MEM_GIB     = $(shell echo '$(MEM)' | sed -n 's/^\([0-9][0-9]*\)[Gg]$$/\1/p')
MEM_IS_BIG  = $(shell [ -n "$(MEM_GIB)" ] && [ "$(MEM_GIB)" -ge 16 ] && echo yes)
VIRT_RAM_BACKEND = -M virt,memory-backend=ram0 -object memory-backend-ram,id=ram0,size=$(MEM),reserve=off -m $(MEM)
VIRT_RAM_PLAIN   = -M virt -m $(MEM)
VIRT_RAM    = $(if $(MEM_IS_BIG),$(VIRT_RAM_BACKEND),$(VIRT_RAM_PLAIN))

.PHONY: all setup user kernel image run run-rpi4 rpi4 test test-kvm kvm-rootfs check bench clean

all: image

setup:
	@tools/setup.sh

# The EL0 programs (user/programs, profile el0) and the memory service
# (user/memsvc, profile service), packaged into the kernel image by
# include_bytes (crates/kernel/src/programs.rs).
user: setup
	$(CARGO) build --profile el0 --target $(TARGET) -p folio-programs
	$(CARGO) build --profile service --target $(TARGET) -p folio-memsvc-program
	$(CARGO) build --profile el0 --target $(KERNEL_TARGET) -p folio-programs --bin ipcbench --bin ipcserver

kernel: user
	$(CARGO) build --release --target $(KERNEL_TARGET) -p folio-kernel

image: kernel
	$(OBJCOPY) -O binary $(KERNEL_ELF) $(KERNEL_IMG)

run: image
	timeout --foreground $(TIMEOUT) qemu-system-aarch64 $(VIRT_RAM) -cpu $(CPU) $(QEMU_COMMON) \
	    -kernel $(KERNEL_IMG) -append "$(RUN_ARGS)" $(QEMU_EXTRA)

run-rpi4: image
	timeout --foreground $(TIMEOUT) qemu-system-aarch64 -M raspi4b $(QEMU_COMMON) \
	    -kernel $(KERNEL_IMG) -dtb $(RPI4_DTB) -append "$(RUN_ARGS)" $(QEMU_EXTRA)

rpi4: image
	mkdir -p target/rpi4
	cp $(KERNEL_IMG) target/rpi4/kernel8.img
	cp crates/kernel/rpi4/config.txt target/rpi4/config.txt
	@echo "SD card files in target/rpi4 (see README.md, 'Booting a real Raspberry Pi 4')"

# Host unit tests of every host crate and the QEMU integration tests
# (crates/kernel/tests/qemu.rs) in one run.
# Debian's arm64 kernel (KVM built in), QEMU and busybox for the nested
# KVM runs, from this machine's apt sources (cached in target/kvm).
KVM_DIR := target/kvm
kvm-rootfs:
	tools/kvm/fetch.sh $(KVM_DIR)

test: image kvm-rootfs
	FOLIO_IMAGE=$(CURDIR)/$(KERNEL_IMG) FOLIO_KVM_ROOT=$(CURDIR)/$(KVM_DIR)/rootfs $(CARGO) test --release

# folio under Linux KVM (VHE and nVHE), nested in QEMU TCG.
test-kvm: image kvm-rootfs
	FOLIO_IMAGE=$(CURDIR)/$(KERNEL_IMG) FOLIO_KVM_ROOT=$(CURDIR)/$(KVM_DIR)/rootfs $(CARGO) test --release -p folio-kernel --test kvm

# Deterministic instruction counts: one vCPU, icount, fixed seed and clock.
ICOUNT = -icount shift=0,sleep=off -seed 1 -rtc base=2024-01-01T00:00:00,clock=vm
BENCH_BOOT = timeout 300 qemu-system-aarch64 -m 4G $(QEMU_COMMON) $(ICOUNT) -kernel $(KERNEL_IMG)

# In-kernel benchmarks under QEMU icount for each granule (the 4K memory
# service's figures then beside Linux hugetlb's, tools/beside-linux.awk),
# then the host benchmark (criterion, folio against aarch64-paging).
bench: image
	@mkdir -p target/bench
	@for g in 4k:cortex-a72 16k:max 64k:cortex-a72; do \
	    echo "== granule $${g%%:*} (-cpu $${g##*:})"; \
	    $(BENCH_BOOT) -M virt -cpu $${g##*:} -append "exit=semihosting loglevel=warn bench granule=$${g%%:*}" | grep -E '^(bench|ipcbench|longbench|membench|memsvc: (background )?(zeroing|merging))' > target/bench/$${g%%:*}.txt || exit 1; \
	    cat target/bench/$${g%%:*}.txt; \
	done
	@awk -f tools/beside-linux.awk target/bench/4k.txt
	@echo "== granule 4k (-cpu cortex-a72), -smp 2 and -smp 4: IPC across cores, broadcast TLBI"
	@for n in 2 4; do \
	    $(BENCH_BOOT) -M virt -cpu cortex-a72 -smp $$n -append "exit=semihosting loglevel=warn bench granule=4k memsvc=off" | grep -E '^(ipcbench|bench broadcast)' || exit 1; \
	done
	@echo "== client lifetimes (launcher, memory service, 10,000 clients), one core"
	@for g in 4k:cortex-a72 16k:max 64k:cortex-a72; do \
	    $(BENCH_BOOT) -M virt -cpu $${g##*:} -append "exit=semihosting loglevel=warn ktest=come_and_go memsvc=off granule=$${g%%:*}" | grep -E '^result lifetimes' || exit 1; \
	done
	@echo "== the memory service adopting hugepages= pools: 48 GiB (1G:44,2M:1000) and 64 GiB (1G:60) guests"
	@for m in 48:1G:44,2M:1000 64:1G:60; do \
	    timeout 300 qemu-system-aarch64 $(QEMU_COMMON) $(ICOUNT) -kernel $(KERNEL_IMG) -M virt,memory-backend=ram0 -cpu cortex-a72 \
	        -object memory-backend-ram,id=ram0,size=$${m%%:*}G,reserve=off -m $${m%%:*}G \
	        -append "exit=semihosting loglevel=warn hugepages=$${m#*:}" | grep -E '^result (hugepages|memsvc.adopt|memsvc.start|memsvc.run)' || exit 1; \
	done
	$(CARGO) bench -p folio-bench --bench paging

check: kernel
	tools/check-no-fp.sh $(KERNEL_ELF)
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --release --target $(KERNEL_TARGET) -p folio-kernel -- -D warnings
	$(CARGO) clippy --profile el0 --target $(TARGET) -p folio-rt -p folio-programs -- -D warnings
	$(CARGO) clippy --profile service --target $(TARGET) -p folio-memsvc-program -- -D warnings
	$(CARGO) fmt --all --check

clean:
	$(CARGO) clean
