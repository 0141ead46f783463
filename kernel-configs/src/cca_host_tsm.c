// SPDX-License-Identifier: GPL-2.0-only
/*
 * cca_host_tsm: the testbed's CCA host TSM driver. Its probe registers a
 * TSM device (tsm0) under the device it binds, but only when the RMM has
 * Device Assignment; otherwise it fails with -ENODEV and the device stays
 * unbound. What it binds, and so how udev finds it, is the variant: a
 * platform device or an auxiliary device.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/err.h>
#include <linux/module.h>
#include <linux/tsm.h>

#include "cca_testbed.h"

static int __maybe_unused host_probe(struct device *dev)
{
	struct tsm_dev *tsm;

	if (!cca_testbed_firmware()->da) {
		dev_info(dev, "the RMM has no Device Assignment: no TSM\n");
		return -ENODEV;
	}
	tsm = tsm_register(dev, NULL);
	if (IS_ERR(tsm)) {
		dev_err(dev, "tsm_register: %pe\n", tsm);
		return PTR_ERR(tsm);
	}
	dev_set_drvdata(dev, tsm);
	dev_info(dev, "registered %s\n", dev_name(&tsm->dev));
	return 0;
}

static void __maybe_unused host_remove(struct device *dev)
{
	tsm_unregister(dev_get_drvdata(dev));
}

#if IS_ENABLED(CONFIG_CCA_TESTBED_PLATFORM)
#include <linux/platform_device.h>

static int host_platform_probe(struct platform_device *pdev)
{
	return host_probe(&pdev->dev);
}

static void host_platform_remove(struct platform_device *pdev)
{
	host_remove(&pdev->dev);
}

static const struct platform_device_id host_ids[] = {
	{ .name = CCA_RMI_DEV },
	{}
};
MODULE_DEVICE_TABLE(platform, host_ids);

static struct platform_driver host_driver = {
	.probe = host_platform_probe,
	.remove = host_platform_remove,
	.id_table = host_ids,
	.driver.name = KBUILD_MODNAME,
};
module_platform_driver(host_driver);

#elif IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX) || IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX_NOLEGACY)
#include <linux/auxiliary_bus.h>

static int host_aux_probe(struct auxiliary_device *adev, const struct auxiliary_device_id *id)
{
	return host_probe(&adev->dev);
}

static void host_aux_remove(struct auxiliary_device *adev)
{
	host_remove(&adev->dev);
}

static const struct auxiliary_device_id host_ids[] = {
	{ .name = CCA_AUX_HOST_MOD "." CCA_RMI_DEV },
	{}
};
MODULE_DEVICE_TABLE(auxiliary, host_ids);

/* No .name: the driver is then called KBUILD_MODNAME in sysfs. */
static struct auxiliary_driver host_driver = {
	.probe = host_aux_probe,
	.remove = host_aux_remove,
	.id_table = host_ids,
};
module_auxiliary_driver(host_driver);

#else
#error "built only for variants with a device to drive (Kconfig)"
#endif

MODULE_DESCRIPTION("cca-testbed CCA host TSM driver");
MODULE_LICENSE("GPL");
