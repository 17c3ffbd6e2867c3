"""Benchmark decontamination by word n-gram overlap (Brown et al. 2020): reading benchmarks
(:mod:`.benchmarks`), cutting collisions out of documents (:mod:`.cut`), the report
(:mod:`.report`) and the step (:mod:`.step`)."""
