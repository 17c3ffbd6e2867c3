"""Running a pipeline: planning stages (:mod:`.plan`), the driver (:mod:`.driver`), the work
of one task (:mod:`.worker`), executors (:mod:`.executor`; :mod:`.local` is the default),
the books (:mod:`.books`), the fingerprint and the manifest.

The package imports nothing itself: a worker process imports :mod:`.worker` alone, not the
driver. Import from the modules (``from assay.engine.driver import run_pipeline``)."""
