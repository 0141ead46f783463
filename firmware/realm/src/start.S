/*
 * Realm firmware: reset entry, EL2 set-up and the EL2 exception vectors.
 * QEMU's virt machine with virtualization=on and no EL3 starts -bios code
 * at address 0 at EL2 with the MMU off. This file is the part that has to
 * be assembly; everything with a decision in it is in C (realm.c).
 */

#define FRAME_SIZE	(8 * 34)	/* x0..x30, elr, spsr, pad */
#define STACK_SIZE	0x4000

	.section .text.boot, "ax"
	.global _start
_start:
	/* Only EL2 is supported: say so if QEMU started us anywhere else. */
	mrs	x0, CurrentEL
	lsr	x0, x0, #2
	cmp	x0, #2
	b.ne	not_el2

	/* bss is in RAM QEMU zeroed, but a warm start must not see stale
	 * RIPAS or token state. */
	adrp	x0, __bss_start
	add	x0, x0, :lo12:__bss_start
	adrp	x1, __bss_end
	add	x1, x1, :lo12:__bss_end
0:	cmp	x0, x1
	b.hs	1f
	stp	xzr, xzr, [x0], #16
	b	0b
1:
	mrs	x19, mpidr_el1
	and	x19, x19, #0xff			/* Aff0: the CPU index on virt */
	bl	setup_stack
	bl	el2_setup
	mov	x0, x19
	bl	fw_main				/* does not return */
	b	halt

/*
 * Secondary CPUs come here from PSCI CPU_ON (forwarded by fw_main's SMC
 * handler with this entry point): same EL2 set-up, then the kernel's own
 * entry point at EL1, which secondary_entry() looks up.
 */
	.global secondary_start
secondary_start:
	mrs	x19, mpidr_el1
	and	x19, x19, #0xff
	bl	setup_stack
	bl	el2_setup
	mov	x0, x19
	bl	fw_secondary			/* does not return */
	b	halt

/* SP = stacks + (cpu + 1) * STACK_SIZE; cpu in x19, clobbers x0, x1. */
setup_stack:
	cmp	x19, #FW_MAX_CPUS
	b.hs	halt
	adrp	x0, fw_stacks
	add	x0, x0, :lo12:fw_stacks
	add	x1, x19, #1
	mov	x2, #STACK_SIZE
	madd	x0, x1, x2, x0
	mov	sp, x0
	ret

/*
 * The EL2 registers an EL1 kernel needs on QEMU's "max" CPU: nothing of
 * EL1 trapped but SMC (HCR_EL2.TSC); FP/SVE/SME untrapped at full vector
 * length; physical timer and counter open to EL1; GICv3 system registers
 * usable below; PMU counters all EL1's; stage 2 is switched on later by
 * fw_main, once the tables exist.
 */
el2_setup:
	adr	x0, vectors
	msr	vbar_el2, x0

	/* SCTLR_EL2: RES1 bits only, MMU and caches off, little-endian. */
	ldr	x0, =0x30c50830
	msr	sctlr_el2, x0

	/* HCR_EL2: RW (EL1 is AArch64), SWIO, TSC (trap SMC), APK/API
	 * (no pointer-auth traps), EnSCXT; VM is set with stage 2. */
	ldr	x0, =((1 << 31) | (1 << 1) | (1 << 19) | (1 << 40) | (1 << 41) | (1 << 53))
	msr	hcr_el2, x0

	/* CPTR_EL2 (E2H=0 layout): RES1 bits 13, 9, 7:0; TZ(8), TSM(12),
	 * TFP(10), TTA(20), TAM(30), TCPAC(31) all clear: nothing trapped. */
	mov	x0, #0x22ff
	msr	cptr_el2, x0
	isb

	/* Full SVE / SME vector lengths for EL1, when the CPU has them. */
	mrs	x1, id_aa64pfr0_el1
	ubfx	x1, x1, #32, #4			/* SVE */
	cbz	x1, 1f
	mov	x0, #0x1ff
	msr	S3_4_C1_C2_0, x0		/* ZCR_EL2 */
1:	mrs	x1, id_aa64pfr1_el1
	ubfx	x1, x1, #24, #4			/* SME */
	cbz	x1, 2f
	mov	x0, #0x1ff
	orr	x0, x0, #(1 << 31)		/* FA64 */
	msr	S3_4_C1_C2_6, x0		/* SMCR_EL2 */
2:
	/* HCRX_EL2, when FEAT_HCX: MSCEn (MOPS at EL1), TCR2En, SCTLR2En. */
	mrs	x1, id_aa64mmfr1_el1
	ubfx	x1, x1, #40, #4
	cbz	x1, 3f
	ldr	x0, =((1 << 11) | (1 << 14) | (1 << 15))
	msr	S3_4_C1_C2_2, x0		/* HCRX_EL2 */
3:
	/* Fine-grained traps, when FEAT_FGT: their reset value is UNKNOWN
	 * (QEMU: 0), and the bits named n... trap when clear. Set them so
	 * EL1 owns its registers: nAMAIR2/nMAIR2/nS2POR/nPOR_EL0/nPOR_EL1/
	 * nPIR/nPIRE0 (63..57), nTPIDR2_EL0 and nSMPRI_EL1 (55, 54: a kernel
	 * with SME writes SMPRI_EL1 at boot), nGCS_EL1/nGCS_EL0 (53, 52),
	 * nACCDATA_EL1 (50); every positive trap bit clear. */
	mrs	x1, id_aa64mmfr0_el1
	ubfx	x1, x1, #56, #4			/* FGT */
	cbz	x1, 4f
	ldr	x0, =0xfef4000000000000
	msr	S3_4_C1_C1_4, x0		/* HFGRTR_EL2 */
	msr	S3_4_C1_C1_5, x0		/* HFGWTR_EL2 */
	msr	S3_4_C1_C1_6, xzr		/* HFGITR_EL2 */
	msr	S3_4_C3_C1_4, xzr		/* HDFGRTR_EL2 */
	msr	S3_4_C3_C1_5, xzr		/* HDFGWTR_EL2 */
4:
	/* Timer: EL1 reads the physical counter and uses the physical timer. */
	mov	x0, #3
	msr	cnthctl_el2, x0
	msr	cntvoff_el2, xzr

	/* GICv3: system-register interface for EL2 and enabled for EL1. */
	mov	x0, #0xf
	msr	S3_4_C12_C9_5, x0		/* ICC_SRE_EL2 */
	isb

	/* MDCR_EL2: EL1 owns every PMU counter (HPMN = PMCR_EL0.N). */
	mrs	x0, pmcr_el0
	ubfx	x0, x0, #11, #5
	msr	mdcr_el2, x0

	/* EL1 sees the real CPU identity. */
	mrs	x0, midr_el1
	msr	vpidr_el2, x0
	mrs	x0, mpidr_el1
	msr	vmpidr_el2, x0

	/* SCTLR_EL1: RES1 bits, MMU off; the kernel sets its own. */
	ldr	x0, =0x30d00800
	msr	sctlr_el1, x0
	isb
	ret

/* enter_el1(entry, x0 for the kernel): eret to EL1h, interrupts masked. */
	.global enter_el1
enter_el1:
	msr	elr_el2, x0
	mov	x0, #0x3c5			/* EL1h, DAIF masked */
	msr	spsr_el2, x0
	mov	x0, x1
	mov	x1, xzr
	mov	x2, xzr
	mov	x3, xzr
	isb
	eret

/* smc_el2(regs[4]): an SMC from EL2, answered by QEMU's PSCI. */
	.global smc_el2
smc_el2:
	mov	x8, x0
	ldp	x0, x1, [x8]
	ldp	x2, x3, [x8, #16]
	smc	#0
	stp	x0, x1, [x8]
	stp	x2, x3, [x8, #16]
	ret

not_el2:
	/* Nothing is set up: spin, the console watcher reports no kernel. */
halt:
	wfi
	b	halt

/* Vectors. Only a synchronous exception from AArch64 EL1/EL0 is expected. */
.macro	ventry	kind
	.balign	0x80
	sub	sp, sp, #FRAME_SIZE
	stp	x0, x1, [sp]
	mov	x0, #\kind
	b	trap_common
.endm

	.balign	0x800
vectors:
	ventry	0	/* current EL, SP_EL0: sync */
	ventry	1
	ventry	1
	ventry	1
	ventry	2	/* current EL, SP_ELx: sync (a firmware bug) */
	ventry	3
	ventry	3
	ventry	3
	ventry	4	/* lower EL, AArch64: sync (SMC, stage-2 fault, ...) */
	ventry	5	/* irq */
	ventry	5	/* fiq */
	ventry	5	/* serror */
	ventry	6	/* lower EL, AArch32 */
	ventry	6
	ventry	6
	ventry	6

trap_common:
	stp	x2, x3, [sp, #16]
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x19, [sp, #144]
	stp	x20, x21, [sp, #160]
	stp	x22, x23, [sp, #176]
	stp	x24, x25, [sp, #192]
	stp	x26, x27, [sp, #208]
	stp	x28, x29, [sp, #224]
	mrs	x1, elr_el2
	stp	x30, x1, [sp, #240]
	mrs	x1, spsr_el2
	str	x1, [sp, #256]
	/* x0 = kind; the frame's x0/x1 slots hold the caller's x0/x1. */
	mov	x1, sp
	bl	fw_trap
	ldr	x1, [sp, #256]
	msr	spsr_el2, x1
	ldp	x30, x1, [sp, #240]
	msr	elr_el2, x1
	ldp	x0, x1, [sp]
	ldp	x2, x3, [sp, #16]
	ldp	x4, x5, [sp, #32]
	ldp	x6, x7, [sp, #48]
	ldp	x8, x9, [sp, #64]
	ldp	x10, x11, [sp, #80]
	ldp	x12, x13, [sp, #96]
	ldp	x14, x15, [sp, #112]
	ldp	x16, x17, [sp, #128]
	ldp	x18, x19, [sp, #144]
	ldp	x20, x21, [sp, #160]
	ldp	x22, x23, [sp, #176]
	ldp	x24, x25, [sp, #192]
	ldp	x26, x27, [sp, #208]
	ldp	x28, x29, [sp, #224]
	add	sp, sp, #FRAME_SIZE
	eret

	.ltorg
