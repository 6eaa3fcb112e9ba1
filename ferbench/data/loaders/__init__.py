"""Built-in dataset loaders; importing this package registers them.

One module per distributed layout; :mod:`.common` holds what they share (finding the dataset
folder under a root, listing images, mapping codes to canonical labels, sample order).
"""

from ferbench.data.loaders import (  # noqa: F401  (imported to register the loaders)
    bu3dfe,
    ckplus,
    fer2013,
    generic,
    jaffe,
    kdef,
    mmi,
    nimstim,
    oulu_casia,
    rafdb,
)
