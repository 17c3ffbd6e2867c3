"""Language models in the loop: one client for every step that asks a model.

:mod:`assay.llm.spec` is the recipe's ``llm:`` block, :mod:`assay.llm.cache` the request
cache kept in the output folder (a resumed run re-sends nothing that was answered), and
:mod:`assay.llm.client` sends chat requests to any OpenAI-compatible server with bounded
concurrency, retries on rate limits, server errors and timeouts only, and spending caps.
:mod:`assay.llm.prox` parses and runs ProX programs without ever evaluating the model's text.
"""
