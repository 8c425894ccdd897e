"""Speech audio -> SHD-schema spike files: reading clips, the conversion of a whole collection
(:mod:`.convert`), and the generated spoken-digits set (:mod:`.digits`)."""
