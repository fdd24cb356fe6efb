"""The compiled aggregators for Triton: one module per kind (named as in
``ltu_fast.aggregators.SOLVER_KINDS``), each with one ``segment`` function that the one solve kernel
(``kernels/solve.py``) takes as a constexpr; the backend imports the module by the kind's name, so a
kind without a module is an error on the host, never another aggregator's math."""
