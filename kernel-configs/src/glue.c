// SPDX-License-Identifier: GPL-2.0-only
/*
 * cca_testbed registration glue: registers the CCA host and realm devices
 * the way the configured variant does (kernel-configs/README.md, "Per
 * variant"), from the firmware answers recorded in firmware.c. One console
 * line per decision, so a boot log shows what the kernel chose and why.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/auxiliary_bus.h>
#include <linux/device/faux.h>
#include <linux/err.h>
#include <linux/init.h>
#include <linux/kobject.h>
#include <linux/platform_device.h>
#include <linux/sysfs.h>
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

static int __init add_faux(const char *name)
{
	if (!faux_device_create(name, NULL, NULL)) {
		pr_err("faux device %s could not be created\n", name);
		return -ENOMEM;
	}
	pr_info("registered faux device %s\n", name);
	return 0;
}

static int __init register_faux(const struct cca_testbed_fw *fw)
{
	int rc = 0;

	if (fw->rmi && fw->da)
		rc = add_faux(CCA_RMI_DEV);
	else
		pr_info("no faux %s: needs RMI and DA\n", CCA_RMI_DEV);
	if (fw->rsi)
		return add_faux(CCA_RSI_DEV) ?: rc;
	pr_info("no faux %s: needs RSI\n", CCA_RSI_DEV);
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

#if IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_BUS)
static bool realm_guest;

static ssize_t realm_guest_show(struct kobject *kobj, struct kobj_attribute *attr,
				char *buf)
{
	return sysfs_emit(buf, "%d\n", realm_guest);
}
static struct kobj_attribute realm_guest_attr = __ATTR_RO(realm_guest);

static int __init add_smccc_dev(struct device *parent, const char *name)
{
	struct arm_smccc_device *sdev;

	sdev = arm_smccc_device_register(parent, name, 0);
	if (IS_ERR(sdev)) {
		pr_err("arm_smccc device %s-0: %pe\n", name, sdev);
		return PTR_ERR(sdev);
	}
	pr_info("registered arm_smccc device %s\n", dev_name(&sdev->dev));
	return 0;
}

static int __init register_smccc_bus(const struct cca_testbed_fw *fw)
{
	struct platform_device *smccc;
	struct kobject *cca;
	int rc;

	rc = arm_smccc_bus_init();
	if (rc) {
		pr_err("bus arm_smccc: %d\n", rc);
		return rc;
	}
	rc = add_platform(CCA_SMCCC_PDEV, &smccc);
	if (rc)
		return rc;

	realm_guest = fw->rsi;
	cca = kobject_create_and_add("cca", firmware_kobj);
	if (!cca || sysfs_create_file(cca, &realm_guest_attr.attr)) {
		pr_err("/sys/firmware/cca/realm_guest could not be created\n");
		rc = -ENOMEM;
	} else {
		pr_info("firmware/cca/realm_guest reads %d\n", realm_guest);
	}

	if (fw->rmi)
		rc = add_smccc_dev(&smccc->dev, CCA_SMCCC_RMI) ?: rc;
	else
		pr_info("no arm_smccc %s: needs RMI\n", CCA_SMCCC_RMI);
	if (fw->rsi)
		rc = add_smccc_dev(&smccc->dev, CCA_SMCCC_RSI) ?: rc;
	else
		pr_info("no arm_smccc %s: needs RSI\n", CCA_SMCCC_RSI);
	return rc;
}
#endif

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
	if (IS_ENABLED(CONFIG_CCA_TESTBED_FAUX))
		return register_faux(fw);
	if (IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX))
		return register_smccc_aux(fw, true);
	if (IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX_NOLEGACY))
		return register_smccc_aux(fw, false);
#if IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_BUS)
	return register_smccc_bus(fw);
#endif
	if (IS_ENABLED(CONFIG_CCA_TESTBED_VIRTUAL))
		return register_virtual(fw);
	/* module-faux: cca_faux, loaded by udev, registers everything. */
	pr_info("registering nothing: cca_faux does it when udev loads it\n");
	return 0;
}
