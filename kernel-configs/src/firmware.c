// SPDX-License-Identifier: GPL-2.0-only
/*
 * cca_testbed firmware answers: the three questions every variant's
 * registration depends on, asked once at boot.
 *
 * Without Arm firmware the answers come from the kernel command line,
 *
 *	cca_testbed.smc=FID:ARG:R0:R1:R2:R3[,FID:ARG:R0:R1:R2:R3...]
 *
 * (hex, no 0x; an unlisted (FID, ARG) answers SMCCC_RET_NOT_SUPPORTED;
 * "none" lists nothing), written by the testbed from its rmi model.
 * Without the parameter the questions go to the real SMCCC conduit.
 * Only the registration decisions read these answers: is_realm_world() and
 * the realm memory paths never do, so DMA keeps working in an emulated
 * realm.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/arm-smccc.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "cca_testbed.h"

#define SMC_MAX_ENTRIES	16
#define SMC_PARAM_MAX	1024

struct smc_entry {
	u32 fid;
	u64 arg;
	unsigned long r[4];
};

/* Room for every call the glue makes (cca_testbed_init). */
#define FW_MAX_CALLS	16

static char smc_param[SMC_PARAM_MAX];
static bool smc_given;
static struct smc_entry smc_table[SMC_MAX_ENTRIES];
static unsigned int smc_entries;
static struct cca_testbed_fw fw;
/* Every call made and its raw answer, in order, for the answers parameter. */
static struct smc_entry calls[FW_MAX_CALLS];
static unsigned int ncalls;

/*
 * Built-in parameters are set before the allocators exist, so the value is
 * only copied here and parsed by the initcall.
 */
static int smc_set(const char *val, const struct kernel_param *kp)
{
	if (!val)
		return -EINVAL;
	if (strscpy(smc_param, val) < 0) {
		pr_err("cca_testbed.smc is longer than %d bytes; the testbed must pass fewer entries\n",
		       SMC_PARAM_MAX - 1);
		return -ENOSPC;
	}
	smc_given = true;
	return 0;
}

static const struct kernel_param_ops smc_ops = {
	.set = smc_set,
};
/* Not readable in sysfs: the contract exposes only the conduit. */
module_param_cb(smc, &smc_ops, NULL, 0);
MODULE_PARM_DESC(smc, "emulated firmware answers: FID:ARG:R0:R1:R2:R3[,...] in hex, or none");

static int read_only_set(const char *val, const struct kernel_param *kp)
{
	pr_err("%s is read-only; pass cca_testbed.smc= to emulate the firmware\n", kp->name);
	return -EPERM;
}

static int conduit_get(char *buffer, const struct kernel_param *kp)
{
	return sysfs_emit(buffer, "%s\n", fw.emulated ? "emulated-rmi" : "smc");
}

static const struct kernel_param_ops conduit_ops = {
	.set = read_only_set,
	.get = conduit_get,
};
module_param_cb(conduit, &conduit_ops, NULL, 0444);
MODULE_PARM_DESC(conduit, "who answered the firmware calls: emulated-rmi or smc");

/*
 * answers: what the firmware (or the table) answered, in the table's own
 * format, so a run can be held against the model answer for answer.
 */
static int answers_get(char *buffer, const struct kernel_param *kp)
{
	unsigned int i;
	int n = 0;

	for (i = 0; i < ncalls; i++)
		n += sysfs_emit_at(buffer, n, "%s%x:%llx:%lx:%lx:%lx:%lx", i ? "," : "",
				   calls[i].fid, calls[i].arg, calls[i].r[0], calls[i].r[1],
				   calls[i].r[2], calls[i].r[3]);
	return n + sysfs_emit_at(buffer, n, "%s\n", ncalls ? "" : "none");
}

static const struct kernel_param_ops answers_ops = {
	.set = read_only_set,
	.get = answers_get,
};
module_param_cb(answers, &answers_ops, NULL, 0444);
MODULE_PARM_DESC(answers, "every firmware call the glue made and its x0..x3: FID:ARG:R0:R1:R2:R3[,...] in hex");

static int __init parse_entry(char *s, struct smc_entry *e)
{
	u64 v[6];
	char *field;
	int n = 0;

	while ((field = strsep(&s, ":")) != NULL) {
		if (n == ARRAY_SIZE(v) || kstrtou64(field, 16, &v[n]))
			return -EINVAL;
		n++;
	}
	if (n != ARRAY_SIZE(v) || v[0] > U32_MAX)
		return -EINVAL;
	e->fid = v[0];
	e->arg = v[1];
	e->r[0] = v[2];
	e->r[1] = v[3];
	e->r[2] = v[4];
	e->r[3] = v[5];
	return 0;
}

static char parse_buf[SMC_PARAM_MAX] __initdata;

/*
 * A malformed table answers nothing rather than part of itself, so a typo
 * cannot pass for a plausible firmware.
 */
static void __init parse_table(void)
{
	char *s = parse_buf, *ent;
	unsigned int n = 0;

	strscpy(parse_buf, smc_param);
	if (!strcmp(parse_buf, "none")) {
		pr_info("smc table: none (every call answers NOT_SUPPORTED)\n");
		return;
	}
	while ((ent = strsep(&s, ",")) != NULL) {
		if (n == SMC_MAX_ENTRIES) {
			pr_err("smc table has more than %d entries; answering every call NOT_SUPPORTED\n",
			       SMC_MAX_ENTRIES);
			return;
		}
		if (parse_entry(ent, &smc_table[n])) {
			pr_err("smc entry %u is malformed, want FID:ARG:R0:R1:R2:R3 in hex; answering every call NOT_SUPPORTED\n",
			       n);
			return;
		}
		n++;
	}
	smc_entries = n;
	pr_info("smc table: %u entries\n", n);
}

static void __init fw_ask(u32 fid, u64 arg, struct arm_smccc_res *res)
{
	unsigned int i;

	/*
	 * x2 and x3 are passed as 0: firmware that does not implement a call
	 * writes only x0 (TF-A's SMC_UNK), so the rest of the answer is what
	 * the glue put there, and must be defined to be recorded.
	 */
	if (!fw.emulated) {
		arm_smccc_1_1_invoke(fid, arg, 0, 0, res);
		return;
	}
	/* Unlisted: what such firmware answers. */
	*res = (struct arm_smccc_res){ .a0 = SMCCC_RET_NOT_SUPPORTED, .a1 = arg };
	for (i = 0; i < smc_entries; i++) {
		if (smc_table[i].fid == fid && smc_table[i].arg == arg) {
			res->a0 = smc_table[i].r[0];
			res->a1 = smc_table[i].r[1];
			res->a2 = smc_table[i].r[2];
			res->a3 = smc_table[i].r[3];
			return;
		}
	}
}

static void __init fw_call(u32 fid, u64 arg, struct arm_smccc_res *res)
{
	fw_ask(fid, arg, res);
	if (ncalls < FW_MAX_CALLS)
		calls[ncalls++] = (struct smc_entry){ fid, arg,
			{ res->a0, res->a1, res->a2, res->a3 } };
}

/*
 * Asked only to be recorded (no decision reads them): the other RMI
 * revisions and the feature registers past 0, so a run shows what an RMM
 * 1.1 or 2.0 tells a kernel that asks (RMM 2.0 keeps DA in register 2).
 */
static const u64 recorded_revisions[] __initconst = { 0x10001, 0x20000 };
#define RECORDED_FEATURE_REGS	4

const struct cca_testbed_fw *cca_testbed_firmware(void)
{
	return &fw;
}
EXPORT_SYMBOL_GPL(cca_testbed_firmware);

/*
 * late_initcall: the tsm class (tsm-core, a device_initcall) must exist
 * before the virtual variant registers tsm0, and every bus it uses is
 * registered by then.
 */
static int __init cca_testbed_init(void)
{
	struct arm_smccc_res res;
	unsigned int i;

	fw.emulated = smc_given;
	pr_info("variant %s, conduit %s\n", CCA_TESTBED_VARIANT,
		fw.emulated ? "emulated-rmi" : "smc");
	if (fw.emulated)
		parse_table();

	fw_call(CCA_RMI_VERSION, CCA_ABI_1_0, &res);
	fw.rmi_version = res.a0;
	fw.rmi = (res.a0 & 0xff) == 0;
	pr_info("RMI_VERSION(%#lx) x0=%#lx: RMI %s\n", CCA_ABI_1_0, res.a0,
		fw.rmi ? "present" : "absent");

	for (i = 0; i < ARRAY_SIZE(recorded_revisions); i++) {
		fw_call(CCA_RMI_VERSION, recorded_revisions[i], &res);
		pr_info("RMI_VERSION(%#llx) x0=%#lx x1=%#lx x2=%#lx\n",
			recorded_revisions[i], res.a0, res.a1, res.a2);
	}

	/* x0 is the status, x1 the feature register (RMM spec, Linux rmi_features()). */
	fw_call(CCA_RMI_FEATURES, 0, &res);
	fw.rmi_features0 = res.a1;
	fw.da = fw.rmi && res.a0 == 0 && (res.a1 & CCA_RMI_FEATURE0_DA);
	pr_info("RMI_FEATURES(0) x0=%#lx x1=%#lx: DA %s\n", res.a0, res.a1,
		fw.da ? "yes" : "no");
	for (i = 1; i <= RECORDED_FEATURE_REGS; i++) {
		fw_call(CCA_RMI_FEATURES, i, &res);
		pr_info("RMI_FEATURES(%u) x0=%#lx x1=%#lx\n", i, res.a0, res.a1);
	}

	fw_call(CCA_RSI_VERSION, CCA_ABI_1_0, &res);
	fw.rsi_version = res.a0;
	fw.rsi = res.a0 == 0;
	pr_info("RSI_VERSION(%#lx) x0=%#lx: RSI %s\n", CCA_ABI_1_0, res.a0,
		fw.rsi ? "present" : "absent");

	return cca_testbed_register(&fw);
}
late_initcall(cca_testbed_init);
