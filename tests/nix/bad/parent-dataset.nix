# An empty component: not a dataset name.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.parentDataset = "tank//persist";
}
