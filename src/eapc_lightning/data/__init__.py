"""What training reads: the clip cache (format and reader), its index, speaker splits, feature statistics,
landmark windows and the LightningDataModules. The cache is written offline by eapc_lightning.prepare."""
