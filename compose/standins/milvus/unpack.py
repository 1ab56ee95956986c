"""Lay out PyPI `milvus`'s standalone binary like the milvusdb/milvus image: /milvus/bin/milvus,
its shared libraries in /milvus/lib, and /milvus/configs/milvus.yaml rendered from the package's
template with data under /var/lib/milvus and logs on stdout."""

import lzma
import shutil
import sys
from pathlib import Path

import milvus
from milvus import MilvusServerConfig

DATA = "/var/lib/milvus"
VALUES = {
    "etcd_log_path": "stdout",
    "system_log_path": "",
    "etcd_data_dir": f"{DATA}/etcd",
    "local_storage_dir": f"{DATA}/data",
    "rocksmq_data_dir": f"{DATA}/rdb_data",
}


def main(out: Path) -> None:
    lib, bin_dir, configs = out / "lib", out / "bin", out / "configs"
    for directory in (lib, bin_dir, configs):
        directory.mkdir(parents=True, exist_ok=True)
    source = Path(milvus.__file__).parent / "data"
    for packed in sorted((source / "bin").glob("*.lzma")):
        name = packed.name.removesuffix(".lzma")
        target = (bin_dir if name == "milvus" else lib) / name
        with lzma.open(packed) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        target.chmod(0o755)
    config = MilvusServerConfig()
    content = config.template_text
    for placeholder, key in config.config_key_maps.items():
        value = VALUES.get(key, config.configurable_items[key][1])
        content = content.replace(placeholder, config.get_value_text(value))
    (configs / "milvus.yaml").write_text(content)
    shutil.copy(source / "glog.conf", configs / "glog.conf")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
