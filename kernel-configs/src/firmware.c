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

static char smc_param[SMC_PARAM_MAX];
static bool smc_given;
static struct smc_entry smc_table[SMC_MAX_ENTRIES];
static unsigned int smc_entries;
static struct cca_testbed_fw fw;

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

static int conduit_set(const char *val, const struct kernel_param *kp)
{
	pr_err("cca_testbed.conduit is read-only; pass cca_testbed.smc= to emulate the firmware\n");
	return -EPERM;
}

static int conduit_get(char *buffer, const struct kernel_param *kp)
{
	return sysfs_emit(buffer, "%s\n", fw.emulated ? "emulated-rmi" : "smc");
}

static const struct kernel_param_ops conduit_ops = {
	.set = conduit_set,
	.get = conduit_get,
};
module_param_cb(conduit, &conduit_ops, NULL, 0444);
MODULE_PARM_DESC(conduit, "who answered the firmware calls: emulated-rmi or smc");

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

static void __init fw_call(u32 fid, u64 arg, struct arm_smccc_res *res)
{
	unsigned int i;

	if (!fw.emulated) {
		arm_smccc_1_1_invoke(fid, arg, res);
		return;
	}
	*res = (struct arm_smccc_res){ .a0 = SMCCC_RET_NOT_SUPPORTED };
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

	/* x0 is the status, x1 the feature register (RMM spec, Linux rmi_features()). */
	fw_call(CCA_RMI_FEATURES, 0, &res);
	fw.rmi_features0 = res.a1;
	fw.da = fw.rmi && res.a0 == 0 && (res.a1 & CCA_RMI_FEATURE0_DA);
	pr_info("RMI_FEATURES(0) x0=%#lx x1=%#lx: DA %s\n", res.a0, res.a1,
		fw.da ? "yes" : "no");

	fw_call(CCA_RSI_VERSION, CCA_ABI_1_0, &res);
	fw.rsi_version = res.a0;
	fw.rsi = res.a0 == 0;
	pr_info("RSI_VERSION(%#lx) x0=%#lx: RSI %s\n", CCA_ABI_1_0, res.a0,
		fw.rsi ? "present" : "absent");

	return cca_testbed_register(&fw);
}
late_initcall(cca_testbed_init);
