using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Runtime;

/// <summary>
/// The devices Diffuse runs on, through TorchSharp's device API: the CPU (always) and CUDA GPUs when the application
/// references a CUDA build of libtorch instead of the CPU build that the Diffuse package brings (README, Install).
/// </summary>
public static class Devices
{
    /// <summary>The CPU.</summary>
    public static Device Cpu => CPU;

    /// <summary>
    /// The device named <paramref name="name"/>: <c>cpu</c>, <c>cuda</c> (the first GPU) or <c>cuda:N</c>; checks that
    /// libtorch can use it.
    /// </summary>
    /// <param name="name">The device's name.</param>
    /// <exception cref="DiffuseException">The name is unknown, or CUDA is asked for and libtorch has no CUDA support or no such GPU.</exception>
    public static Device Parse(string name)
    {
        string key = (name ?? "").Trim().ToLowerInvariant();
        if (key == "cpu") return CPU;
        if (key == "cuda" || key.StartsWith("cuda:", StringComparison.Ordinal))
        {
            int index = 0;
            if (key.Length > 4 && (!int.TryParse(key.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out index)))
                throw new DiffuseException($"device '{name}' is not a device name: use cpu, cuda or cuda:N with N a GPU's number.");
            if (!cuda.is_available())
                throw new DiffuseException($"device '{name}' was asked for, but the libtorch in this application has no CUDA support (the Diffuse package brings the CPU build, libtorch-cpu-linux-x64). Reference a CUDA build of libtorch instead (README, Install), or use the CPU.");
            int count = cuda.device_count();
            if (index >= count)
                throw new DiffuseException($"device '{name}' does not exist: this machine has {count} CUDA device{(count == 1 ? "" : "s")} (cuda:0 … cuda:{count - 1}).");
            return new Device(DeviceType.CUDA, index);
        }
        throw new DiffuseException($"device '{name}' is not a device name: use cpu, cuda or cuda:N.");
    }
}
