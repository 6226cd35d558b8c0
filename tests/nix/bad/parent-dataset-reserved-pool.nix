# "raidz2" is a vdev keyword: zpool refuses it as a pool name.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.parentDataset = "raidz2/persist";
}
