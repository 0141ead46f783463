// SPDX-License-Identifier: GPL-2.0-only
/*
 * cca_guest_tsm: the testbed's realm guest driver. Its probe registers a
 * configfs-tsm report provider, which makes the module depend on
 * tsm_report: loading it loads tsm_report and so creates
 * /sys/kernel/config/tsm/report. Upstream arm_cca_guest returns -ENODEV
 * outside a real realm, so this driver is the observable one. The provider
 * produces no evidence (report_new answers -EOPNOTSUPP): the testbed
 * measures registration, not attestation.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/err.h>
#include <linux/module.h>
#include <linux/tsm.h>

#include "cca_testbed.h"

static int report_new(struct tsm_report *report, void *data)
{
	return -EOPNOTSUPP;
}

static const struct tsm_report_ops guest_report_ops = {
	.name = KBUILD_MODNAME,
	.report_new = report_new,
};

static int __maybe_unused guest_probe(struct device *dev)
{
	int rc;

	rc = tsm_report_register(&guest_report_ops, NULL);
	if (rc) {
		dev_err(dev, "tsm_report_register: %d\n", rc);
		return rc;
	}
	dev_info(dev, "registered the configfs-tsm report provider\n");
	return 0;
}

static void __maybe_unused guest_remove(struct device *dev)
{
	tsm_report_unregister(&guest_report_ops);
}

#if IS_ENABLED(CONFIG_CCA_TESTBED_PLATFORM)
#include <linux/platform_device.h>

static int guest_platform_probe(struct platform_device *pdev)
{
	return guest_probe(&pdev->dev);
}

static void guest_platform_remove(struct platform_device *pdev)
{
	guest_remove(&pdev->dev);
}

static const struct platform_device_id guest_ids[] = {
	{ .name = CCA_LEGACY_DEV },
	{}
};
MODULE_DEVICE_TABLE(platform, guest_ids);

static struct platform_driver guest_driver = {
	.probe = guest_platform_probe,
	.remove = guest_platform_remove,
	.id_table = guest_ids,
	.driver.name = KBUILD_MODNAME,
};
module_platform_driver(guest_driver);

#elif IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX) || IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX_NOLEGACY)
#include <linux/auxiliary_bus.h>

static int guest_aux_probe(struct auxiliary_device *adev, const struct auxiliary_device_id *id)
{
	return guest_probe(&adev->dev);
}

static void guest_aux_remove(struct auxiliary_device *adev)
{
	guest_remove(&adev->dev);
}

static const struct auxiliary_device_id guest_ids[] = {
	{ .name = CCA_AUX_GUEST_MOD "." CCA_RSI_DEV },
	{}
};
MODULE_DEVICE_TABLE(auxiliary, guest_ids);

/* No .name: the driver is then called KBUILD_MODNAME in sysfs. */
static struct auxiliary_driver guest_driver = {
	.probe = guest_aux_probe,
	.remove = guest_aux_remove,
	.id_table = guest_ids,
};
module_auxiliary_driver(guest_driver);

#else
#error "built only for variants with a device to drive (Kconfig)"
#endif

MODULE_DESCRIPTION("cca-testbed CCA realm guest driver (configfs-tsm report provider)");
MODULE_LICENSE("GPL");
