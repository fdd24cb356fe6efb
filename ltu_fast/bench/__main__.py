"""``python -m ltu_fast.bench ...`` is ``ltu-fast bench ...``."""

from . import main

main()
