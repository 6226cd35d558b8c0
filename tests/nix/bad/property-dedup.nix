# dedup takes a fixed set of words (edonr only with verify); the Nix side once took any string here
# because its hand-kept copy of the property table had no list for dedup.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.properties.dedup = "edonr";
}
