/*
 * SHA-256 and SHA-512 (FIPS 180-4) for RSI_MEASUREMENT_EXTEND, written for
 * this firmware: general registers only, byte accesses (EL2 runs with the
 * MMU off, so memory is Device and must not be read unaligned).
 */
typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long u64;

static const u32 k256[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const u64 k512[80] = {
	0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
	0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
	0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
	0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
	0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
	0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
	0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
	0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
	0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
	0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
	0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
	0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
	0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
	0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
	0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
	0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
	0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
	0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
	0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
	0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
};

static u32 ror32(u32 x, int n) { return x >> n | x << (32 - n); }
static u64 ror64(u64 x, int n) { return x >> n | x << (64 - n); }

static void block256(u32 h[8], const u8 *p)
{
	u32 w[64], a[8];
	for (int i = 0; i < 16; i++)
		w[i] = (u32)p[4 * i] << 24 | (u32)p[4 * i + 1] << 16 | (u32)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		u32 s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
		u32 s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	for (int i = 0; i < 8; i++)
		a[i] = h[i];
	for (int i = 0; i < 64; i++) {
		u32 S1 = ror32(a[4], 6) ^ ror32(a[4], 11) ^ ror32(a[4], 25);
		u32 ch = (a[4] & a[5]) ^ (~a[4] & a[6]);
		u32 t1 = a[7] + S1 + ch + k256[i] + w[i];
		u32 S0 = ror32(a[0], 2) ^ ror32(a[0], 13) ^ ror32(a[0], 22);
		u32 maj = (a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]);
		for (int j = 7; j > 0; j--)
			a[j] = a[j - 1];
		a[4] += t1;
		a[0] = t1 + S0 + maj;
	}
	for (int i = 0; i < 8; i++)
		h[i] += a[i];
}

static void block512(u64 h[8], const u8 *p)
{
	u64 w[80], a[8];
	for (int i = 0; i < 16; i++) {
		w[i] = 0;
		for (int b = 0; b < 8; b++)
			w[i] = w[i] << 8 | p[8 * i + b];
	}
	for (int i = 16; i < 80; i++) {
		u64 s0 = ror64(w[i - 15], 1) ^ ror64(w[i - 15], 8) ^ (w[i - 15] >> 7);
		u64 s1 = ror64(w[i - 2], 19) ^ ror64(w[i - 2], 61) ^ (w[i - 2] >> 6);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	for (int i = 0; i < 8; i++)
		a[i] = h[i];
	for (int i = 0; i < 80; i++) {
		u64 S1 = ror64(a[4], 14) ^ ror64(a[4], 18) ^ ror64(a[4], 41);
		u64 ch = (a[4] & a[5]) ^ (~a[4] & a[6]);
		u64 t1 = a[7] + S1 + ch + k512[i] + w[i];
		u64 S0 = ror64(a[0], 28) ^ ror64(a[0], 34) ^ ror64(a[0], 39);
		u64 maj = (a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]);
		for (int j = 7; j > 0; j--)
			a[j] = a[j - 1];
		a[4] += t1;
		a[0] = t1 + S0 + maj;
	}
	for (int i = 0; i < 8; i++)
		h[i] += a[i];
}

u64 sha_size(u64 algo)
{
	return algo == 0 ? 32 : algo == 1 ? 64 : 0;
}

/* sha_digest hashes a || b (each at most 64 bytes, as MEASUREMENT_EXTEND
 * needs: the old digest and the new value) into out. */
int sha_digest(u64 algo, const u8 *a, u64 alen, const u8 *b, u64 blen, u8 *out)
{
	u8 msg[256];
	u64 n = 0, bs = algo == 0 ? 64 : 128, lenbytes = algo == 0 ? 8 : 16;
	if (!sha_size(algo) || alen > 64 || blen > 64)
		return -1;
	for (u64 i = 0; i < alen; i++)
		msg[n++] = a[i];
	for (u64 i = 0; i < blen; i++)
		msg[n++] = b[i];
	u64 bits = n * 8;
	msg[n++] = 0x80;
	while ((n + lenbytes) % bs)
		msg[n++] = 0;
	for (u64 i = 0; i < lenbytes; i++)
		msg[n + i] = i >= lenbytes - 8 ? bits >> (8 * (lenbytes - 1 - i)) : 0;
	n += lenbytes;
	if (algo == 0) {
		u32 h[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
		for (u64 off = 0; off < n; off += bs)
			block256(h, msg + off);
		for (int i = 0; i < 32; i++)
			out[i] = h[i / 4] >> (24 - 8 * (i % 4));
		return 0;
	}
	u64 h[8] = { 0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
		     0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179 };
	for (u64 off = 0; off < n; off += bs)
		block512(h, msg + off);
	for (int i = 0; i < 64; i++)
		out[i] = h[i / 8] >> (56 - 8 * (i % 8));
	return 0;
}

/* The compiler may emit calls to these for struct and array copies. */
void *memset(void *d, int c, unsigned long n)
{
	u8 *p = d;
	while (n--)
		*p++ = c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}
