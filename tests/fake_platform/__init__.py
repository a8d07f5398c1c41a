"""A test-only fifth platform, "fake": a connector package using the registry and a tiny
emulator, registered by this folder's conftest only. It proves that a platform is one package
and one registry entry: nothing outside this folder names it."""
