# zstd stops at level 19.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.compression = "zstd-20";
}
