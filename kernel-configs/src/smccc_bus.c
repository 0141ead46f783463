// SPDX-License-Identifier: GPL-2.0-only
/*
 * A minimal arm_smccc bus for the smccc-bus variant: one device per SMCCC
 * firmware service, named "<name>-<id>", matched to drivers by service
 * name, and announced to udev as MODALIAS=arm_smccc:<name> (file2alias is
 * patched to turn MODULE_DEVICE_TABLE(arm_smccc, ...) into exactly that
 * alias). Only what the testbed observes: no PM, no driver_override.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/err.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "cca_testbed.h"

static const struct arm_smccc_device_id *
arm_smccc_match_id(const struct arm_smccc_device_id *id, const struct arm_smccc_device *sdev)
{
	for (; id && id->name[0]; id++)
		if (!strcmp(id->name, sdev->name))
			return id;
	return NULL;
}

static int arm_smccc_match(struct device *dev, const struct device_driver *drv)
{
	return !!arm_smccc_match_id(to_arm_smccc_driver(drv)->id_table,
				    to_arm_smccc_device(dev));
}

static int arm_smccc_uevent(const struct device *dev, struct kobj_uevent_env *env)
{
	return add_uevent_var(env, "MODALIAS=%s%s", ARM_SMCCC_MODULE_PREFIX,
			      to_arm_smccc_device(dev)->name);
}

static int arm_smccc_probe(struct device *dev)
{
	struct arm_smccc_driver *drv = to_arm_smccc_driver(dev->driver);
	struct arm_smccc_device *sdev = to_arm_smccc_device(dev);

	if (!drv->probe)
		return 0;
	return drv->probe(sdev, arm_smccc_match_id(drv->id_table, sdev));
}

static void arm_smccc_remove(struct device *dev)
{
	struct arm_smccc_driver *drv = to_arm_smccc_driver(dev->driver);

	if (drv->remove)
		drv->remove(to_arm_smccc_device(dev));
}

static ssize_t modalias_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s%s\n", ARM_SMCCC_MODULE_PREFIX,
			  to_arm_smccc_device(dev)->name);
}
static DEVICE_ATTR_RO(modalias);

static struct attribute *arm_smccc_dev_attrs[] = {
	&dev_attr_modalias.attr,
	NULL,
};
ATTRIBUTE_GROUPS(arm_smccc_dev);

static const struct bus_type arm_smccc_bus_type = {
	.name		= "arm_smccc",
	.dev_groups	= arm_smccc_dev_groups,
	.match		= arm_smccc_match,
	.uevent		= arm_smccc_uevent,
	.probe		= arm_smccc_probe,
	.remove		= arm_smccc_remove,
};

int __init arm_smccc_bus_init(void)
{
	return bus_register(&arm_smccc_bus_type);
}

static void arm_smccc_release(struct device *dev)
{
	kfree(to_arm_smccc_device(dev));
}

struct arm_smccc_device *arm_smccc_device_register(struct device *parent,
						   const char *name, u32 id)
{
	struct arm_smccc_device *sdev;
	int rc;

	if (strlen(name) >= ARM_SMCCC_NAME_SIZE)
		return ERR_PTR(-EINVAL);
	sdev = kzalloc_obj(*sdev);
	if (!sdev)
		return ERR_PTR(-ENOMEM);
	sdev->name = name;
	sdev->id = id;
	sdev->dev.parent = parent;
	sdev->dev.bus = &arm_smccc_bus_type;
	sdev->dev.release = arm_smccc_release;
	device_initialize(&sdev->dev);
	rc = dev_set_name(&sdev->dev, "%s-%u", name, id);
	if (!rc)
		rc = device_add(&sdev->dev);
	if (rc) {
		put_device(&sdev->dev);
		return ERR_PTR(rc);
	}
	return sdev;
}

int __arm_smccc_driver_register(struct arm_smccc_driver *drv, struct module *owner,
				const char *modname)
{
	drv->driver.bus = &arm_smccc_bus_type;
	drv->driver.owner = owner;
	drv->driver.mod_name = modname;
	if (!drv->driver.name)
		drv->driver.name = modname;
	return driver_register(&drv->driver);
}
EXPORT_SYMBOL_GPL(__arm_smccc_driver_register);

void arm_smccc_driver_unregister(struct arm_smccc_driver *drv)
{
	driver_unregister(&drv->driver);
}
EXPORT_SYMBOL_GPL(arm_smccc_driver_unregister);
