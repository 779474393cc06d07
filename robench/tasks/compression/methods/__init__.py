"""Reference methods of the ``compression`` task, one file each; all subclass
:class:`robench.tasks.compression.methods.base.CompressionMethod`."""
