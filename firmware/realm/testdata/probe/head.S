	.section .text.head, "ax"
	.global _start, mode, secondary
_start:
	b	1f			/* code0 */
	.word	0			/* code1 */
	.quad	0			/* text_offset */
	.quad	_end - _start		/* image_size */
	.quad	0			/* flags */
mode:	.quad	0			/* res2: the test's choice */
	.quad	0, 0			/* res3, res4 */
	.word	0x644d5241		/* "ARM\x64" */
	.word	0
1:	ldr	x0, =0x40180000
	mov	sp, x0
	bl	probe_main
	b	.
secondary:				/* PSCI CPU_ON entry: x0 = context id */
	ldr	x1, =0x40100000
	mov	sp, x1
	bl	probe_secondary
	b	.
	.ltorg
