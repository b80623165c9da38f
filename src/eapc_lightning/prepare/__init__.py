"""Offline preparation (``eapc prepare``): raw talking-face media -> the clip cache that training reads.

Modules, in the order a run uses them:

* ``run``: ``prepare_dataset``, one shard of a dataset from its arguments to its summary;
* ``checks``: the checks before any work (arguments, a writable cache folder);
* ``errors``: the usage errors that stop a run, in library terms (``eapc prepare`` words them as flags);
* ``sources``: the dataset layouts (MEAD, CREMA-D, a folder of videos) and the labels in their names;
* ``selection``: which items a shard prepares (filters, limit, sharding);
* ``manifest``: the cache's bookkeeping (manifests, clip fingerprints, what is up to date, leftovers);
* ``item``: preparing one raw clip (audio, video, landmarks, alignment, features -> clip files);
* ``video``: video decoding resampled to 25 fps by timestamp;
* ``settings``: the pipeline's knobs and their hash;
* ``pool``: the worker processes (a forkserver, warmed up by ``warmup``) that end with the run;
* ``progress``: the progress bar.

The cache format itself and everything that reads it live in eapc_lightning.data.
"""
