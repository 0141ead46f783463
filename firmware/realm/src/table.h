/*
 * The table: what the testbed writes per cell from the rmi model
 * (Go: firmware/realm.Table) and loads at TABLE_PA with -device loader.
 * Its mode says what the firmware stands in for: the RMM as a realm sees
 * it (RSI answers, the realm's memory view) or as a host sees it (RMI
 * answers, no stage 2).
 * All numbers little-endian. Changing the layout means bumping
 * TABLE_VERSION here and in the Go writer together.
 *
 *   0x000  magic "CCARSITB"
 *   0x008  u32 version (TABLE_VERSION)
 *   0x00c  u32 size of the whole table in bytes
 *   0x010  u32 FNV-1a 32 of the whole table with this field zero
 *   0x014  u32 number of entries
 *   0x018  u64 IPA width (RSI_REALM_CONFIG ipa_width)
 *   0x020  u64 hash algorithm (0 SHA-256, 1 SHA-512)
 *   0x028  u64 protected RAM base (IPA = PA; initial RIPAS RAM)
 *   0x030  u64 protected RAM size (the device tree's memory node says so)
 *   0x038  u32 token template offset, u32 token template length
 *   0x040  u32 challenge offset in the token (64 bytes),
 *          u32 mode (MODE_REALM, MODE_HOST)
 *   0x048  u32 REM offsets in the token, 4 of them (0: not in the token)
 *   0x058  u8  RPV[64]
 *   0x098  u8  measurements[5][64] (RIM, REM0..3), digest-size prefix used
 *   0x200  entries, ENTRY_SIZE bytes each:
 *          u32 fid, u32 kind, u64 x1 (the argument an ANSWER matches),
 *          u64 x0..x3 (the answer; an OTHERWISE entry's for any other x1)
 *   then   the token template
 */
#ifndef TABLE_H
#define TABLE_H

#define TABLE_PA	0x80000000UL	/* first byte of firmware RAM */
#define TABLE_MAX	0x00100000UL
#define TABLE_VERSION	1
#define TABLE_MAGIC	"CCARSITB"
#define ENTRIES_OFF	0x200
#define ENTRY_SIZE	48
#define TOKEN_MAX	0x10000
#define NUM_MEAS	5
#define MEAS_MAX	64

/* Entry kinds. */
#define KIND_ANSWER	1	/* fixed x0..x3 for this (fid, x1) */
#define KIND_FIRMWARE	2	/* the firmware implements fid from the table's state */
#define KIND_OTHERWISE	3	/* fixed x0..x3 for fid when no ANSWER matches x1 */

/* Modes. */
#define MODE_REALM	0	/* RSI from the table, stage 2 as a realm's memory */
#define MODE_HOST	1	/* RMI from the table, RSI NOT_SUPPORTED, no stage 2 */

#endif
