/*
 * Realm firmware: stands where the RMM stands for a realm, so an
 * unmodified arm64 kernel at EL1 finds itself in a realm. It checks the
 * RSI table, builds stage 2 (README.md has the map), gives the kernel
 * only its own RAM in the device tree, enters it at EL1 and then answers
 * the kernel's SMCs: RSI from the table, PSCI forwarded to QEMU, the
 * SMCCC version itself. In host mode (the table says so) it stands where
 * the RMM stands for a KVM host instead: no stage 2, the kernel's RAM
 * plain, RMI answered from the table and RSI not supported. Anything else that reaches EL2 is printed as one
 * "realmfw: fatal:" line and the VM is powered off.
 */
#include "table.h"

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long u64;

void enter_el1(u64 entry, u64 x0) __attribute__((noreturn));
void smc_el2(u64 regs[4]);
extern char secondary_start[];

/* Machine facts (QEMU virt, highmem=off, -m 3G; README.md). */
#define UART_PA		0x09000000UL
#define RAM_PA		0x40000000UL	/* the device tree is here */
#define KERNEL_PA	0x40200000UL	/* -device loader puts the Image here */
#define FLASH_END	0x08000000UL	/* the firmware's own flash, unmapped */
#define GB		0x40000000UL

/* SMCCC and PSCI function IDs. */
#define SMCCC_VERSION		0x80000000U
#define SMCCC_ARCH_FEATURES	0x80000001U
#define PSCI_CPU_ON_64		0xC4000003U
#define PSCI_SYSTEM_OFF		0x84000008U
#define PSCI_FEATURES		0x8400000AU
#define NOT_SUPPORTED		(~0UL)

/* RMI (TF-RMM smc-rmi.h): the host's range. */
#define RMI_FIRST		0xC4000150U
#define RMI_LAST		0xC400018FU

/* RSI (Linux rsi_smc.h, RMM specification DEN0137). */
#define RSI_FID(n)		(0xC4000000U | (n))
#define RSI_VERSION		RSI_FID(0x190)
#define RSI_FEATURES		RSI_FID(0x191)
#define RSI_MEAS_READ		RSI_FID(0x192)
#define RSI_MEAS_EXTEND		RSI_FID(0x193)
#define RSI_TOKEN_INIT		RSI_FID(0x194)
#define RSI_TOKEN_CONTINUE	RSI_FID(0x195)
#define RSI_REALM_CONFIG	RSI_FID(0x196)
#define RSI_IPA_STATE_SET	RSI_FID(0x197)
#define RSI_IPA_STATE_GET	RSI_FID(0x198)
#define RSI_HOST_CALL		RSI_FID(0x199)
#define RSI_LAST_KNOWN		RSI_HOST_CALL
#define RSI_RANGE_END		RSI_FID(0x1AF)

#define RSI_SUCCESS	0
#define RSI_ERROR_INPUT	1
#define RSI_ERROR_STATE	2
#define RSI_INCOMPLETE	3
#define RSI_ACCEPT	0
#define RSI_REJECT	1
#define RIPAS_EMPTY	0
#define RIPAS_RAM	1
#define GRANULE		4096UL

/* ESR_EL2 exception classes. */
#define EC_SMC64	0x17
#define EC_IABT_LOW	0x20
#define EC_DABT_LOW	0x24

/* Stage-2 descriptors: AF, inner-shareable normal write-back or device. */
#define S2_AF		(1UL << 10)
#define S2_RW		(3UL << 6)
#define S2_NORMAL	((0xfUL << 2) | (3UL << 8) | S2_AF | S2_RW | 1)
#define S2_DEVICE	((0x1UL << 2) | S2_AF | S2_RW | (2UL << 53) | 1)
#define S2_TABLE	3UL

/* Firmware RAM (bss, after the table): out of every IPA's reach. */
u8 fw_stacks[FW_MAX_CPUS * 0x4000] __attribute__((aligned(16)));
static u64 s2_l1[512] __attribute__((aligned(4096)));
static u64 s2_l2_mmio[512] __attribute__((aligned(4096)));
static u8 ripas[1UL << 19];	/* one byte per granule of the protected half */
static u8 meas[NUM_MEAS][MEAS_MAX];
static u8 token[TOKEN_MAX];
static u64 token_len, token_off;
static int token_live;
static u64 ram_base, ram_end, ipa_width, hash_algo, table_entries, mode;
static u64 cpu_entry[FW_MAX_CPUS], cpu_ctx[FW_MAX_CPUS];

int sha_digest(u64 algo, const u8 *a, u64 alen, const u8 *b, u64 blen, u8 *out);
u64 sha_size(u64 algo);

static const u8 *table(void) { return (const u8 *)TABLE_PA; }

/* Device memory at EL2 with the MMU off: byte accesses only, never
 * unaligned. */
static u64 rd(const u8 *p, int n)
{
	u64 v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static u64 be(const u8 *p, int n)
{
	u64 v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void copy(u8 *d, const u8 *s, u64 n)
{
	while (n--)
		*d++ = *s++;
}

/* Console: the PL011 the kernel uses too. */
static void putc(char c)
{
	volatile u32 *uart = (volatile u32 *)UART_PA;
	while (uart[0x18 / 4] & (1 << 5))	/* TXFF */
		;
	uart[0] = c;
}

static void puts(const char *s)
{
	while (*s) {
		if (*s == '\n')
			putc('\r');
		putc(*s++);
	}
}

static void puthex(u64 v)
{
	char buf[19];
	int i = 18;
	buf[i] = 0;
	do {
		buf[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	buf[--i] = 'x';
	buf[--i] = '0';
	puts(buf + i);
}

static void putdec(u64 v)
{
	char buf[21];
	int i = 20;
	buf[i] = 0;
	do {
		buf[--i] = '0' + v % 10;
		v /= 10;
	} while (v);
	puts(buf + i);
}

static void __attribute__((noreturn)) power_off(void)
{
	u64 r[4] = { PSCI_SYSTEM_OFF };
	smc_el2(r);
	for (;;)
		asm volatile("wfi");
}

/* fatal prints "realmfw: fatal: <what>" (the console watcher's pattern)
 * with up to two named values, and stops the VM. */
static void __attribute__((noreturn)) fatal(const char *what, const char *n1, u64 v1, const char *n2, u64 v2)
{
	puts("\nrealmfw: fatal: ");
	puts(what);
	if (n1) {
		puts(" ");
		puts(n1);
		puts("=");
		puthex(v1);
	}
	if (n2) {
		puts(" ");
		puts(n2);
		puts("=");
		puthex(v2);
	}
	puts("\n");
	power_off();
}

static u32 fnv1a(const u8 *p, u64 n)
{
	u32 h = 2166136261U;
	for (u64 i = 0; i < n; i++) {
		u8 c = (i >= 0x10 && i < 0x14) ? 0 : p[i];
		h = (h ^ c) * 16777619U;
	}
	return h;
}

/* check_table refuses anything it cannot use, naming what is wrong. */
static void check_table(void)
{
	const u8 *t = table();
	const char *magic = TABLE_MAGIC;
	for (int i = 0; i < 8; i++)
		if (t[i] != (u8)magic[i])
			fatal("RSI table: no table at its address (bad magic): load one with -device loader", "addr", TABLE_PA, 0, 0);
	if (rd(t + 0x8, 4) != TABLE_VERSION)
		fatal("RSI table: unsupported version", "version", rd(t + 0x8, 4), "want", TABLE_VERSION);
	u64 size = rd(t + 0xc, 4);
	if (size < ENTRIES_OFF || size > TABLE_MAX)
		fatal("RSI table: bad size", "size", size, "max", TABLE_MAX);
	if (fnv1a(t, size) != rd(t + 0x10, 4))
		fatal("RSI table: checksum mismatch", "stored", rd(t + 0x10, 4), "computed", fnv1a(t, size));
	table_entries = rd(t + 0x14, 4);
	if (ENTRIES_OFF + table_entries * ENTRY_SIZE > size)
		fatal("RSI table: entries run past the table", "entries", table_entries, "size", size);
	ipa_width = rd(t + 0x18, 8);
	if (ipa_width != 32)
		fatal("RSI table: IPA width must be 32 for this memory map", "ipa_width", ipa_width, 0, 0);
	hash_algo = rd(t + 0x20, 8);
	if (!sha_size(hash_algo))
		fatal("RSI table: unknown hash algorithm", "hash_algo", hash_algo, 0, 0);
	ram_base = rd(t + 0x28, 8);
	ram_end = ram_base + rd(t + 0x30, 8);
	if (ram_base != RAM_PA || ram_end <= ram_base || ram_end > RAM_PA + GB)
		fatal("RSI table: protected RAM must start at 0x40000000 and fit in 1 GiB", "base", ram_base, "end", ram_end);
	mode = rd(t + 0x44, 4);
	if (mode != MODE_REALM && mode != MODE_HOST)
		fatal("RSI table: unknown mode", "mode", mode, 0, 0);
	u64 toff = rd(t + 0x38, 4), tlen = rd(t + 0x3c, 4), coff = rd(t + 0x40, 4);
	if (toff + tlen > size || tlen > TOKEN_MAX || (tlen && coff + 64 > tlen))
		fatal("RSI table: token template out of bounds", "offset", toff, "length", tlen);
	for (int i = 0; i < 4; i++) {
		u64 r = rd(t + 0x48 + 4 * i, 4);
		if (r && r + sha_size(hash_algo) > tlen)
			fatal("RSI table: REM offset past the token", "rem", i, "offset", r);
	}
	for (u64 i = 0; i < table_entries; i++) {
		const u8 *e = t + ENTRIES_OFF + i * ENTRY_SIZE;
		u64 kind = rd(e + 4, 4);
		if (kind != KIND_ANSWER && kind != KIND_FIRMWARE && kind != KIND_OTHERWISE)
			fatal("RSI table: entry of unknown kind", "entry", i, "kind", kind);
	}
	copy(&meas[0][0], t + 0x98, sizeof(meas));
}

/* find returns the entry for (fid, x1): an ANSWER matching x1 or the
 * FIRMWARE entry of fid, else fid's OTHERWISE entry. */
static const u8 *find(u32 fid, u64 x1)
{
	const u8 *otherwise = 0;

	for (u64 i = 0; i < table_entries; i++) {
		const u8 *e = table() + ENTRIES_OFF + i * ENTRY_SIZE;
		u64 kind = rd(e + 4, 4);
		if (rd(e, 4) != fid)
			continue;
		if (kind == KIND_OTHERWISE) {
			otherwise = e;
			continue;
		}
		if (kind == KIND_FIRMWARE || rd(e + 8, 8) == x1)
			return e;
	}
	return otherwise;
}

/* Stage 2, IPA width 32 (README.md): 1 GiB blocks except the first GiB,
 * whose first 128 MiB (the firmware's flash) stay unmapped.
 *   IPA 0-1G  -> PA 0-1G   device  (protected view of MMIO)
 *   IPA 1-2G  -> PA 1-2G   normal  (the kernel's RAM)
 *   IPA 2-3G  -> PA 0-1G   device  (unprotected view of MMIO)
 *   IPA 3-4G  -> PA 3-4G   normal  (unprotected view of RAM: QEMU RAM the
 *                                   kernel is never given)
 * PA 2-3G, the firmware's RAM, is reached by no IPA. */
static void setup_stage2(void)
{
	for (u64 i = 0; i < 512; i++) {
		u64 pa = i << 21;
		s2_l2_mmio[i] = pa < FLASH_END ? 0 : pa | S2_DEVICE;
	}
	s2_l1[0] = (u64)s2_l2_mmio | S2_TABLE;
	s2_l1[1] = 1 * GB | S2_NORMAL;
	s2_l1[2] = (u64)s2_l2_mmio | S2_TABLE;
	s2_l1[3] = 3 * GB | S2_NORMAL;
	/* T0SZ 32, start level 1, WBWA inner shareable walks, 4K, PS 36 bits. */
	u64 vtcr = 32 | (1UL << 6) | (1UL << 8) | (1UL << 10) | (3UL << 12) | (1UL << 16) | (1UL << 31);
	asm volatile("msr vtcr_el2, %0; msr vttbr_el2, %1; isb; tlbi vmalls12e1; dsb sy; isb"
		     :: "r"(vtcr), "r"((u64)s2_l1) : "memory");
}

static void enable_stage2(void)
{
	u64 hcr;
	asm volatile("mrs %0, hcr_el2" : "=r"(hcr));
	asm volatile("msr hcr_el2, %0; isb" :: "r"(hcr | 1));
}

/* limit_memory rewrites the device tree's memory node to the protected
 * RAM alone, so the kernel never takes the unprotected RAM as its own. */
static void limit_memory(void)
{
	u8 *fdt = (u8 *)RAM_PA;
	if (be(fdt, 4) != 0xd00dfeed)
		fatal("no device tree at the base of RAM", "addr", RAM_PA, 0, 0);
	u8 *p = fdt + be(fdt + 8, 4);
	const u8 *strs = fdt + be(fdt + 12, 4);
	u8 *end = fdt + be(fdt + 4, 4);
	int depth = 0, in_memory = 0, done = 0;
	while (p < end) {
		u64 tok = be(p, 4);
		p += 4;
		if (tok == 1) {		/* BEGIN_NODE */
			const char *name = (const char *)p;
			depth++;
			in_memory = depth == 2 && name[0] == 'm' && name[1] == 'e' && name[2] == 'm' &&
				    name[3] == 'o' && name[4] == 'r' && name[5] == 'y';
			while (*p)
				p++;
			p = (u8 *)(((u64)p + 4) & ~3UL);
		} else if (tok == 2) {	/* END_NODE */
			depth--;
			in_memory = 0;
		} else if (tok == 3) {	/* PROP */
			u64 len = be(p, 4), nameoff = be(p + 4, 4);
			u8 *val = p + 8;
			const char *pn = (const char *)strs + nameoff;
			if (in_memory && pn[0] == 'r' && pn[1] == 'e' && pn[2] == 'g' && pn[3] == 0) {
				if (len != 16 || be(val, 8) != ram_base)
					fatal("device tree memory node is not one (base, size) pair at the RAM base", "len", len, "base", be(val, 8));
				if (be(val + 8, 8) < ram_end - ram_base)
					fatal("QEMU has less RAM than the protected range: use -m 3G", "ram", be(val + 8, 8), "want", ram_end - ram_base);
				u64 size = ram_end - ram_base;
				for (int i = 0; i < 8; i++)
					val[8 + i] = size >> (56 - 8 * i);
				done++;
			}
			p = (u8 *)(((u64)val + len + 3) & ~3UL);
		} else if (tok == 4) {	/* NOP */
		} else if (tok == 9) {	/* END */
			break;
		} else {
			fatal("device tree: bad structure token", "token", tok, 0, 0);
		}
	}
	if (done != 1)
		fatal("device tree: want exactly one memory node", "found", done, 0, 0);
}

void fw_main(u64 cpu)
{
	volatile u32 *uart = (volatile u32 *)UART_PA;
	uart[0x30 / 4] = 0x301;		/* UARTEN, TXE, RXE */
	if (cpu != 0)
		fatal("CPU started before CPU_ON", "cpu", cpu, 0, 0);
	check_table();
	/* Both modes keep the firmware's own RAM (2-3 GiB) from the kernel;
	 * a host's RAM is the same range, plain. */
	limit_memory();
	const u8 *img = (const u8 *)KERNEL_PA;
	if (mode == MODE_HOST) {
		if (rd(img + 0x38, 4) != 0x644d5241)
			fatal("no arm64 Image at the kernel address, the kernel never reached EL1", "addr", KERNEL_PA, 0, 0);
		puts("realmfw: host mode, RMI table v1, ");
		putdec(table_entries);
		puts(" entries, RAM ");
		puthex(ram_base);
		puts("-");
		puthex(ram_end);
		puts(", no stage 2; kernel at EL1\n");
		enter_el1(KERNEL_PA, RAM_PA);
	}
	for (u64 g = ram_base / GRANULE; g < ram_end / GRANULE; g++)
		ripas[g] = RIPAS_RAM;
	setup_stage2();
	if (rd(img + 0x38, 4) != 0x644d5241)
		fatal("no arm64 Image at the kernel address, the kernel never reached EL1", "addr", KERNEL_PA, 0, 0);
	puts("realmfw: RSI table v1, ");
	putdec(table_entries);
	puts(" entries, IPA width ");
	putdec(ipa_width);
	puts(", RAM ");
	puthex(ram_base);
	puts("-");
	puthex(ram_end);
	puts("; kernel at EL1\n");
	enable_stage2();
	enter_el1(KERNEL_PA, RAM_PA);
}

void fw_secondary(u64 cpu)
{
	if (mode == MODE_REALM) {
		setup_stage2();
		enable_stage2();
	}
	enter_el1(cpu_entry[cpu], cpu_ctx[cpu]);
}

/* The frame trap_common saves: x0..x30, ELR, SPSR. */
struct frame {
	u64 x[31];
	u64 elr, spsr;
};

/* granule_ok: a granule the kernel owns as protected RAM (IPA = PA). */
static int granule_ok(u64 ipa)
{
	return ipa % GRANULE == 0 && ipa >= ram_base && ipa < ram_end && ripas[ipa / GRANULE] == RIPAS_RAM;
}

static void rsi_realm_config(struct frame *f)
{
	u64 ipa = f->x[1];
	if (!granule_ok(ipa)) {
		f->x[0] = RSI_ERROR_INPUT;
		return;
	}
	u8 *g = (u8 *)ipa;
	for (u64 i = 0; i < GRANULE; i++)
		g[i] = 0;
	for (int i = 0; i < 8; i++) {
		g[i] = ipa_width >> (8 * i);
		g[8 + i] = hash_algo >> (8 * i);
	}
	copy(g + 0x200, table() + 0x58, 64);
	f->x[0] = RSI_SUCCESS;
}

/* IPA_STATE_SET(base, top, ripas, flags): the host always accepts inside
 * the kernel's RAM and rejects elsewhere (there is no memory to give). */
static void rsi_ipa_state_set(struct frame *f)
{
	u64 base = f->x[1], top = f->x[2], want = f->x[3];
	if (base % GRANULE || top % GRANULE || base >= top || top > (1UL << (ipa_width - 1)) || want > RIPAS_RAM) {
		f->x[0] = RSI_ERROR_INPUT;
		return;
	}
	if (base < ram_base || top > ram_end) {
		f->x[0] = RSI_SUCCESS;
		f->x[1] = base;
		f->x[2] = RSI_REJECT;
		return;
	}
	for (u64 g = base / GRANULE; g < top / GRANULE; g++)
		ripas[g] = want;
	f->x[0] = RSI_SUCCESS;
	f->x[1] = top;
	f->x[2] = RSI_ACCEPT;
}

/* IPA_STATE_GET(base, end): the RIPAS at base and how far it holds. */
static void rsi_ipa_state_get(struct frame *f)
{
	u64 base = f->x[1], end = f->x[2];
	if (base % GRANULE || end % GRANULE || base >= end || end > (1UL << (ipa_width - 1))) {
		f->x[0] = RSI_ERROR_INPUT;
		return;
	}
	u8 r = ripas[base / GRANULE];
	u64 top = base + GRANULE;
	while (top < end && ripas[top / GRANULE] == r)
		top += GRANULE;
	f->x[0] = RSI_SUCCESS;
	f->x[1] = top;
	f->x[2] = r;
}

static void rsi_meas_read(struct frame *f)
{
	u64 idx = f->x[1];
	if (idx >= NUM_MEAS) {
		f->x[0] = RSI_ERROR_INPUT;
		return;
	}
	for (int w = 0; w < 8; w++)
		f->x[1 + w] = rd(&meas[idx][8 * w], 8);
	f->x[0] = RSI_SUCCESS;
}

/* token_rem puts REM i's current value into the token template. */
static void token_rems(void)
{
	u64 n = sha_size(hash_algo);
	for (int i = 0; i < 4; i++) {
		u64 off = rd(table() + 0x48 + 4 * i, 4);
		if (off)
			copy(token + off, meas[1 + i], n);
	}
}

/* MEASUREMENT_EXTEND(index 1..4, size <= 64, x3..x10 the value):
 * REM = H(REM || value[:size]), as the rmi model does. */
static void rsi_meas_extend(struct frame *f)
{
	u64 idx = f->x[1], size = f->x[2];
	if (idx == 0 || idx >= NUM_MEAS || size > MEAS_MAX) {
		f->x[0] = RSI_ERROR_INPUT;
		return;
	}
	u8 value[MEAS_MAX];
	for (int w = 0; w < 8; w++)
		for (int b = 0; b < 8; b++)
			value[8 * w + b] = f->x[3 + w] >> (8 * b);
	u64 n = sha_size(hash_algo);
	u8 out[MEAS_MAX] = { 0 };
	sha_digest(hash_algo, meas[idx], n, value, size, out);
	copy(meas[idx], out, MEAS_MAX);
	f->x[0] = RSI_SUCCESS;
}

/* TOKEN_INIT(x1..x8 the challenge): the model's template with this
 * challenge and the current REMs; x1 its exact size. */
static void rsi_token_init(struct frame *f)
{
	const u8 *t = table();
	token_len = rd(t + 0x3c, 4);
	if (!token_len) {
		f->x[0] = RSI_ERROR_STATE;
		return;
	}
	copy(token, t + rd(t + 0x38, 4), token_len);
	u64 coff = rd(t + 0x40, 4);
	for (int w = 0; w < 8; w++)
		for (int b = 0; b < 8; b++)
			token[coff + 8 * w + b] = f->x[1 + w] >> (8 * b);
	token_rems();
	token_off = 0;
	token_live = 1;
	f->x[0] = RSI_SUCCESS;
	f->x[1] = token_len;
}

/* TOKEN_CONTINUE(granule, offset, size): the next part of the token. */
static void rsi_token_continue(struct frame *f)
{
	u64 ipa = f->x[1], off = f->x[2], size = f->x[3];
	if (!token_live) {
		f->x[0] = RSI_ERROR_STATE;
		return;
	}
	if (!granule_ok(ipa) || off >= GRANULE || size > GRANULE - off) {
		f->x[0] = RSI_ERROR_INPUT;
		return;
	}
	u64 n = token_len - token_off;
	if (n > size)
		n = size;
	copy((u8 *)ipa + off, token + token_off, n);
	token_off += n;
	f->x[1] = n;
	if (token_off < token_len) {
		f->x[0] = RSI_INCOMPLETE;
		return;
	}
	token_live = 0;
	f->x[0] = RSI_SUCCESS;
}

/* HOST_CALL(RsiHostCall IPA): no host is listening; the call returns
 * with the structure as it was. */
static void rsi_host_call(struct frame *f)
{
	u64 ipa = f->x[1];
	if (ipa % 256 || !granule_ok(ipa & ~(GRANULE - 1))) {
		f->x[0] = RSI_ERROR_INPUT;
		return;
	}
	f->x[0] = RSI_SUCCESS;
}

static void rsi(struct frame *f, u32 fid)
{
	const u8 *e = find(fid, f->x[1]);
	if (!e) {
		puts("\nrealmfw: fatal: RSI call not in the table fid=");
		puthex(fid);
		puts(" x1=");
		puthex(f->x[1]);
		puts(" pc=");
		puthex(f->elr);
		puts("\n");
		power_off();
	}
	if (rd(e + 4, 4) != KIND_FIRMWARE) {
		for (int i = 0; i < 4; i++)
			f->x[i] = rd(e + 16 + 8 * i, 8);
		return;
	}
	switch (fid) {
	case RSI_REALM_CONFIG:
		return rsi_realm_config(f);
	case RSI_IPA_STATE_SET:
		return rsi_ipa_state_set(f);
	case RSI_IPA_STATE_GET:
		return rsi_ipa_state_get(f);
	case RSI_MEAS_READ:
		return rsi_meas_read(f);
	case RSI_MEAS_EXTEND:
		return rsi_meas_extend(f);
	case RSI_TOKEN_INIT:
		return rsi_token_init(f);
	case RSI_TOKEN_CONTINUE:
		return rsi_token_continue(f);
	case RSI_HOST_CALL:
		return rsi_host_call(f);
	}
	fatal("RSI table: the firmware does not implement this call", "fid", fid, 0, 0);
}

/* rmi answers a host's RMI call from the table; a function the table
 * does not answer is NOT_SUPPORTED with x1..x3 as they were, as the model
 * answers every RMI function but VERSION and FEATURES. */
static void rmi(struct frame *f, u32 fid)
{
	const u8 *e = find(fid, f->x[1]);
	if (!e || rd(e + 4, 4) == KIND_FIRMWARE) {
		f->x[0] = NOT_SUPPORTED;
		return;
	}
	for (int i = 0; i < 4; i++)
		f->x[i] = rd(e + 16 + 8 * i, 8);
}

static void forward(struct frame *f)
{
	u64 r[4] = { f->x[0], f->x[1], f->x[2], f->x[3] };
	smc_el2(r);
	for (int i = 0; i < 4; i++)
		f->x[i] = r[i];
}

/* cpu_on keeps the kernel's entry point and starts the CPU in the
 * firmware, which sets up its EL2 and enters the kernel at EL1. */
static void cpu_on(struct frame *f)
{
	u64 cpu = f->x[1] & 0xff;
	if ((f->x[1] & ~0xffUL) || cpu >= FW_MAX_CPUS) {
		f->x[0] = (u64)-2;	/* PSCI INVALID_PARAMETERS */
		return;
	}
	cpu_entry[cpu] = f->x[2];
	cpu_ctx[cpu] = f->x[3];
	u64 r[4] = { PSCI_CPU_ON_64, f->x[1], (u64)secondary_start, 0 };
	smc_el2(r);
	f->x[0] = r[0];
}

static void smc(struct frame *f)
{
	u32 fid = f->x[0];
	if ((f->x[0] >> 32) != 0) {
		f->x[0] = NOT_SUPPORTED;	/* not an SMCCC function ID */
		return;
	}
	if (mode == MODE_HOST && fid >= RSI_VERSION && fid <= RSI_RANGE_END) {
		f->x[0] = NOT_SUPPORTED;	/* a host is not a realm */
		return;
	}
	if (mode == MODE_HOST && fid >= RMI_FIRST && fid <= RMI_LAST)
		return rmi(f, fid);
	if (fid >= RSI_VERSION && fid <= RSI_LAST_KNOWN)
		return rsi(f, fid);
	if (fid > RSI_LAST_KNOWN && fid <= RSI_RANGE_END) {
		f->x[0] = NOT_SUPPORTED;	/* RSI functions RSI 1.0 lacks */
		return;
	}
	switch (fid) {
	case SMCCC_VERSION:
		f->x[0] = 0x10002;	/* 1.2: x0..x17 carry arguments */
		return;
	case SMCCC_ARCH_FEATURES:
		f->x[0] = f->x[1] == SMCCC_VERSION ? 0 : NOT_SUPPORTED;
		return;
	case PSCI_FEATURES:
		if (f->x[1] == SMCCC_VERSION) {
			f->x[0] = 0;
			return;
		}
		return forward(f);
	case PSCI_CPU_ON_64:
		return cpu_on(f);
	}
	/* PSCI 0.2+ (both calling conventions) goes on to QEMU. */
	if ((fid >= 0x84000000U && fid <= 0x8400001FU) || (fid >= 0xC4000000U && fid <= 0xC400001FU))
		return forward(f);
	f->x[0] = NOT_SUPPORTED;
}

void fw_trap(u64 kind, struct frame *f)
{
	u64 esr, far, hpfar;
	asm volatile("mrs %0, esr_el2" : "=r"(esr));
	asm volatile("mrs %0, far_el2" : "=r"(far));
	asm volatile("mrs %0, hpfar_el2" : "=r"(hpfar));
	u64 ec = esr >> 26;
	if (kind == 4 && ec == EC_SMC64) {
		smc(f);
		f->elr += 4;	/* a trapped SMC returns to the next instruction */
		return;
	}
	if (kind == 4 && (ec == EC_DABT_LOW || ec == EC_IABT_LOW)) {
		u64 ipa = (hpfar >> 4) << 12 | (far & 0xfff);
		fatal("stage-2 fault", "ipa", ipa, "esr", esr);
	}
	if (kind == 4)
		fatal("unexpected trap from EL1", "esr", esr, "pc", f->elr);
	if (kind == 2)
		fatal("exception in the firmware", "esr", esr, "pc", f->elr);
	fatal("unexpected exception", "vector", kind, "pc", f->elr);
}
