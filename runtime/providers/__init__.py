"""Provider classes: the contract (``base``), the name registry and one module per wire API.

Provider modules are imported only when a provider that names them is first used.
"""
