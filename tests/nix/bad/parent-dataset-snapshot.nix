# A snapshot is not a parent.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.parentDataset = "tank/persist@today";
}
