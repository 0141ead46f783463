/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cca_testbed: what the built-in glue shares with the testbed's modules.
 *
 * The glue asks the firmware (or the emulated table on the command line)
 * three questions once, at boot, and every registration decision in the
 * glue and the modules reads the recorded answers from here, so a module
 * loaded later sees exactly what the glue saw.
 */
#ifndef CCA_TESTBED_H
#define CCA_TESTBED_H

#include <linux/device.h>
#include <linux/mod_devicetable.h>
#include <linux/types.h>

/* SMCCC function IDs of the three questions (RMM specification, DEN0137). */
#define CCA_RMI_VERSION		0xC4000150u
#define CCA_RMI_FEATURES	0xC4000165u
#define CCA_RSI_VERSION		0xC4000190u
/* Requested ABI revision 1.0: major << 16 | minor. */
#define CCA_ABI_1_0		0x10000ul
/* The RFC's DA check: bit 42 of RMI feature register 0 (RMM 1.1-alpha). */
#define CCA_RMI_FEATURE0_DA	BIT_ULL(42)

/**
 * struct cca_testbed_fw - the recorded firmware answers
 * @emulated: answers came from cca_testbed.smc, not from real SMCs
 * @rmi: RMI_VERSION(1.0) returned RMI SUCCESS (x0 & 0xff == 0)
 * @da: @rmi and bit 42 of RMI_FEATURES(0)
 * @rsi: RSI_VERSION(1.0) returned RSI SUCCESS (x0 == 0)
 * @rmi_version: raw x0 of RMI_VERSION
 * @rmi_features0: feature register 0 (x1 of RMI_FEATURES(0))
 * @rsi_version: raw x0 of RSI_VERSION
 */
struct cca_testbed_fw {
	bool emulated;
	bool rmi;
	bool da;
	bool rsi;
	unsigned long rmi_version;
	unsigned long rmi_features0;
	unsigned long rsi_version;
};

const struct cca_testbed_fw *cca_testbed_firmware(void);

/* Glue-internal: the variant's registrations, called once after the query. */
int cca_testbed_register(const struct cca_testbed_fw *fw);

#if IS_ENABLED(CONFIG_CCA_TESTBED_PLATFORM)
#define CCA_TESTBED_VARIANT "platform"
#elif IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX)
#define CCA_TESTBED_VARIANT "smccc-aux"
#elif IS_ENABLED(CONFIG_CCA_TESTBED_SMCCC_AUX_NOLEGACY)
#define CCA_TESTBED_VARIANT "smccc-aux-nolegacy"
#elif IS_ENABLED(CONFIG_CCA_TESTBED_VIRTUAL)
#define CCA_TESTBED_VARIANT "virtual"
#elif IS_ENABLED(CONFIG_CCA_TESTBED_MODULE_FAUX)
#define CCA_TESTBED_VARIANT "module-faux"
#endif

/* Device names every variant agrees on (kernel-configs/README.md). */
#define CCA_RMI_DEV		"arm-rmi-dev"	/* host device (platform, module-faux, aux name) */
#define CCA_RSI_DEV		"arm-rsi-dev"	/* realm device (module-faux, aux name) */
#define CCA_LEGACY_DEV		"arm-cca-dev"	/* upstream realm platform device */
#define CCA_SMCCC_PDEV		"arm-smccc"	/* parent platform device */
#define CCA_AUX_HOST_MOD	"arm_cca_host"	/* auxiliary modname of the host device */
#define CCA_AUX_GUEST_MOD	"arm_cca_guest"	/* auxiliary modname of the realm device */

#endif /* CCA_TESTBED_H */
