// SPDX-License-Identifier: GPL-2.0-only
/*
 * cca_testbed registration glue: registers the CCA host and realm devices
 * the way the configured variant does (kernel-configs/README.md, "Per
 * variant"), from the firmware answers recorded in firmware.c. One console
 * line per decision, so a boot log shows what the kernel chose and why.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/auxiliary_bus.h>
#include <linux/err.h>
#include <linux/init.h>
#include <linux/platform_device.h>
#include <linux/tsm.h>

#include "cca_testbed.h"

static int __init add_platform(const char *name, struct platform_device **out)
{
	struct platform_device *pdev;

	pdev = platform_device_register_simple(name, PLATFORM_DEVID_NONE, NULL, 0);
	if (IS_ERR(pdev)) {
		pr_err("platform device %s: %pe\n", name, pdev);
		return PTR_ERR(pdev);
	}
	pr_info("registered platform device %s\n", name);
	if (out)
		*out = pdev;
	return 0;
}

static int __init register_platform(const struct cca_testbed_fw *fw)
{
	int rc = 0;

	if (fw->rmi && fw->da)
		rc = add_platform(CCA_RMI_DEV, NULL);
	else
		pr_info("no %s: needs RMI and DA\n", CCA_RMI_DEV);
	if (fw->rsi)
		return add_platform(CCA_LEGACY_DEV, NULL) ?: rc;
	pr_info("no %s: needs RSI\n", CCA_LEGACY_DEV);
	return rc;
}

static int __init add_aux(struct device *parent, const char *modname, const char *name)
{
	if (!auxiliary_device_create(parent, modname, name, NULL, 0)) {
		pr_err("auxiliary device %s.%s.0 could not be created\n", modname, name);
		return -ENOMEM;
	}
	pr_info("registered auxiliary device %s.%s.0\n", modname, name);
	return 0;
}

/*
 * smccc-aux: every arm64 VM has an SMCCC conduit, so the arm-smccc parent
 * always exists; the host device appears on RMI alone, and the host
 * driver's probe decides on DA.
 */
static int __init register_smccc_aux(const struct cca_testbed_fw *fw, bool legacy)
{
	struct platform_device *smccc;
	int rc;

	rc = add_platform(CCA_SMCCC_PDEV, &smccc);
	if (rc)
		return rc;
	if (fw->rmi)
		rc = add_aux(&smccc->dev, CCA_AUX_HOST_MOD, CCA_RMI_DEV);
	else
		pr_info("no %s.%s: needs RMI\n", CCA_AUX_HOST_MOD, CCA_RMI_DEV);
	if (!fw->rsi) {
		pr_info("no %s.%s: needs RSI\n", CCA_AUX_GUEST_MOD, CCA_RSI_DEV);
		return rc;
	}
	rc = add_aux(&smccc->dev, CCA_AUX_GUEST_MOD, CCA_RSI_DEV) ?: rc;
	if (legacy)
		return add_platform(CCA_LEGACY_DEV, NULL) ?: rc;
	pr_info("no %s: this variant dropped the legacy device\n", CCA_LEGACY_DEV);
	return rc;
}

static int __init register_virtual(const struct cca_testbed_fw *fw)
{
	struct tsm_dev *tsm;

	if (fw->rsi)
		pr_info("RSI present, but this variant registers nothing for a realm\n");
	if (!fw->rmi || !fw->da) {
		pr_info("no tsm: needs RMI and DA\n");
		return 0;
	}
	tsm = tsm_register(NULL, NULL);
	if (IS_ERR(tsm)) {
		pr_err("tsm_register(NULL): %pe\n", tsm);
		return PTR_ERR(tsm);
	}
	pr_info("registered %s with no parent\n", dev_name(&tsm->dev));
	return 0;
}

int __init cca_testbed_register(const struct cca_testbed_fw *fw)
{
	if (IS_ENABLED(CONFIG_CCA_TESTBED_PLATFORM))
		return register_platform(fw);
	if (IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX))
		return register_smccc_aux(fw, true);
	if (IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX_NOLEGACY))
		return register_smccc_aux(fw, false);
	if (IS_ENABLED(CONFIG_CCA_TESTBED_VIRTUAL))
		return register_virtual(fw);
	/* module-faux: cca_faux, loaded by udev, registers everything. */
	pr_info("registering nothing: cca_faux does it when udev loads it\n");
	return 0;
}
