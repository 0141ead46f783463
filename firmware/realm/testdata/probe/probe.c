/*
 * A stand-in kernel for the firmware's tests: an arm64 Image header, then
 * a few RSI, RMI and PSCI calls printed on the PL011 (the test compares
 * the RSI_VERSION and RMI lines with the model's answers), then what the
 * test asked for in the header's res2 field (offset 32): 0 power off,
 * 1 touch the flash (unmapped in realm mode: a stage-2 fault), 2 ask RSI_VERSION for a revision the
 * table lacks, 3 an HVC (unexpected trap), 4 start CPU 1 with PSCI
 * CPU_ON and wait for it to say where it runs.
 */
typedef unsigned long u64;

struct res { u64 a0, a1, a2, a3; };

static struct res smc(u64 fid, u64 x1, u64 x2, u64 x3)
{
	register u64 r0 asm("x0") = fid, r1 asm("x1") = x1, r2 asm("x2") = x2, r3 asm("x3") = x3;
	asm volatile("smc #0" : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r3) :: "memory");
	return (struct res){ r0, r1, r2, r3 };
}

static void putc(char c)
{
	volatile unsigned *uart = (volatile unsigned *)0x09000000UL;
	while (uart[6] & (1 << 5))
		;
	uart[0] = c;
}

static void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void hex(u64 v)
{
	puts("0x");
	for (int i = 60; i >= 0; i -= 4)
		putc("0123456789abcdef"[(v >> i) & 15]);
}

static void show(const char *name, struct res r)
{
	puts("probe: ");
	puts(name);
	puts(" ");
	hex(r.a0);
	puts(" ");
	hex(r.a1);
	puts(" ");
	hex(r.a2);
	puts("\n");
}

extern u64 mode;
extern char secondary[];
volatile u64 cpu1_el;

void probe_secondary(u64 ctx)
{
	u64 el;
	asm volatile("mrs %0, CurrentEL" : "=r"(el));
	cpu1_el = (el >> 2) | ctx << 8;
	for (;;)
		asm volatile("wfe");
}
static unsigned char granule[4096] __attribute__((aligned(4096)));

void probe_main(void)
{
	u64 el;
	asm volatile("mrs %0, CurrentEL" : "=r"(el));
	puts("probe: at EL");
	putc('0' + (el >> 2));
	puts("\n");
	show("SMCCC_VERSION", smc(0x80000000, 0, 0, 0));
	show("RSI_VERSION", smc(0xC4000190, 0x10000, 0, 0));
	/* A revision the table does not list: the RMM's answer, as to a
	 * kernel that leaves x1 as it was (v7's SMCCC bus). */
	show("RSI_VERSION 9.9", smc(0xC4000190, 0x90009, 0, 0));
	show("RSI_REALM_CONFIG", smc(0xC4000196, (u64)granule, 0, 0));
	show("ipa_width", (struct res){ ((volatile u64 *)granule)[0], ((volatile u64 *)granule)[1], 0, 0 });
	show("RSI_IPA_STATE_GET", smc(0xC4000198, 0x40000000, 0x80000000, 0));
	show("RSI_IPA_STATE_GET mmio", smc(0xC4000198, 0x09000000, 0x09001000, 0));
	show("RSI_UNKNOWN", smc(0xC40001A0, 0, 0, 0));
	show("RMI_VERSION 1.0", smc(0xC4000150, 0x10000, 0, 0));
	show("RMI_VERSION 1.1", smc(0xC4000150, 0x10001, 0, 0));
	show("RMI_VERSION 2.0", smc(0xC4000150, 0x20000, 0, 0));
	show("RMI_VERSION 9.9", smc(0xC4000150, 0x90009, 0, 0));
	show("RMI_FEATURES 0", smc(0xC4000165, 0, 0, 0));
	show("RMI_FEATURES 1", smc(0xC4000165, 1, 0, 0));
	show("RMI_FEATURES 9", smc(0xC4000165, 9, 0, 0));
	show("RMI_GRANULE_DELEGATE", smc(0xC4000151, 0x40000000, 0, 0));
	switch (mode) {
	case 1:
		puts("probe: reading flash\n");
		(void)*(volatile u64 *)0x1000;
		puts("probe: read flash\n");
		break;
	case 2:
		show("RSI_FEATURES 9", smc(0xC4000191, 9, 0, 0));
		break;
	case 3:
		asm volatile("hvc #0");
		break;
	case 4:
		show("PSCI_CPU_ON", smc(0xC4000003, 1, (u64)secondary, 0x5a));
		for (u64 i = 0; i < 100000000 && !cpu1_el; i++)
			;
		show("cpu1", (struct res){ cpu1_el & 0xff, cpu1_el >> 8, 0, 0 });
		break;
	}
	puts("probe: power off\n");
	smc(0x84000008, 0, 0, 0);
	for (;;)
		;
}
