"""Reference methods of the ``room_layout`` task: ``prior``, ``geometric``, ``fcn`` and
``st-pio`` (one module each; the contract is in :mod:`.base`)."""
