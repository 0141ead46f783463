// SPDX-License-Identifier: GPL-2.0-only
/*
 * cca_faux: the module-faux variant, after the upstream tdx-host pattern: a
 * module that udev loads through a CPU feature alias creates its own faux
 * devices and does the registration in their probe. arm64 has no RME or
 * RSI hwcap, so the only feature the alias can hang off is one every arm64
 * CPU has (ASIMD): udev loads this module on every arm64 VM, and its init
 * decides from the firmware answers. With nothing to register it fails
 * with -ENODEV and does not stay loaded; tsm_report, its dependency, does.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpufeature.h>
#include <linux/device/faux.h>
#include <linux/err.h>
#include <linux/module.h>
#include <linux/tsm.h>

#include "cca_testbed.h"

static struct faux_device *host_fdev, *guest_fdev;

static int host_probe(struct faux_device *fdev)
{
	struct tsm_dev *tsm = tsm_register(&fdev->dev, NULL);

	if (IS_ERR(tsm)) {
		dev_err(&fdev->dev, "tsm_register: %pe\n", tsm);
		return PTR_ERR(tsm);
	}
	faux_device_set_drvdata(fdev, tsm);
	dev_info(&fdev->dev, "registered %s\n", dev_name(&tsm->dev));
	return 0;
}

static void host_remove(struct faux_device *fdev)
{
	tsm_unregister(faux_device_get_drvdata(fdev));
}

static const struct faux_device_ops host_ops = {
	.probe = host_probe,
	.remove = host_remove,
};

static int report_new(struct tsm_report *report, void *data)
{
	return -EOPNOTSUPP;
}

static const struct tsm_report_ops guest_report_ops = {
	.name = KBUILD_MODNAME,
	.report_new = report_new,
};

static int guest_probe(struct faux_device *fdev)
{
	int rc = tsm_report_register(&guest_report_ops, NULL);

	if (rc) {
		dev_err(&fdev->dev, "tsm_report_register: %d\n", rc);
		return rc;
	}
	dev_info(&fdev->dev, "registered the configfs-tsm report provider\n");
	return 0;
}

static void guest_remove(struct faux_device *fdev)
{
	tsm_report_unregister(&guest_report_ops);
}

static const struct faux_device_ops guest_ops = {
	.probe = guest_probe,
	.remove = guest_remove,
};

static int __init cca_faux_init(void)
{
	const struct cca_testbed_fw *fw = cca_testbed_firmware();

	if (fw->rmi && fw->da) {
		host_fdev = faux_device_create(CCA_RMI_DEV, NULL, &host_ops);
		if (!host_fdev)
			pr_err("faux device %s could not be created\n", CCA_RMI_DEV);
	} else {
		pr_info("no faux %s: needs RMI and DA\n", CCA_RMI_DEV);
	}
	if (fw->rsi) {
		guest_fdev = faux_device_create(CCA_RSI_DEV, NULL, &guest_ops);
		if (!guest_fdev)
			pr_err("faux device %s could not be created\n", CCA_RSI_DEV);
	} else {
		pr_info("no faux %s: needs RSI\n", CCA_RSI_DEV);
	}
	if (!host_fdev && !guest_fdev) {
		pr_info("nothing to register: not staying loaded\n");
		return -ENODEV;
	}
	return 0;
}

static void __exit cca_faux_exit(void)
{
	faux_device_destroy(guest_fdev);
	faux_device_destroy(host_fdev);
}
module_exit(cca_faux_exit);

/* Defines module_init: ASIMD present, then cca_faux_init. */
module_cpu_feature_match(ASIMD, cca_faux_init);

MODULE_DESCRIPTION("cca-testbed module-faux: faux CCA devices created by a feature-loaded module");
MODULE_LICENSE("GPL");
