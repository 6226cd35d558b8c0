# A parent dataset that would reach zfs as an option: a pool name starts with a letter.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.parentDataset = "--help";
}
