using System.Globalization;
using Diffuse.Models;

namespace Diffuse.Runtime;

/// <summary>
/// Compares the memory a piece of work will need with the memory the machine has available, so that a batch or a
/// network too large for it is refused at once with a suggestion, rather than after minutes of swapping or by the
/// kernel's out-of-memory killer.
/// </summary>
public static class MemoryBudget
{
    /// <summary>
    /// An override of <see cref="AvailableBytes"/> for tests and constrained hosts, in bytes (the environment variable
    /// <c>DIFFUSE_MEMORY_LIMIT</c> sets it for a whole process); null measures the machine.
    /// </summary>
    public static long? Limit { get; set; }

    /// <summary>
    /// The memory available to this process for new allocations: <see cref="Limit"/> when set, else Linux's
    /// <c>MemAvailable</c> (free memory plus reclaimable caches) capped by the GC's view of the memory limit (a
    /// container's cgroup limit), else the GC's view alone.
    /// </summary>
    public static long AvailableBytes()
    {
        if (Limit is { } limit) return limit;
        if (long.TryParse(Environment.GetEnvironmentVariable("DIFFUSE_MEMORY_LIMIT"), NumberStyles.None, CultureInfo.InvariantCulture, out long fromEnvironment))
            return fromEnvironment;
        var gc = GC.GetGCMemoryInfo();
        long total = gc.TotalAvailableMemoryBytes;
        long? available = MemAvailable();
        if (available is not { } a) return total;
        // Under a cgroup limit the GC reports the limit; the process may use what is left of it.
        long headroom = total - Environment.WorkingSet;
        return Math.Min(a, Math.Max(0, headroom));
    }

    /// <summary>
    /// Throws a <see cref="DiffuseException"/> when <paramref name="bytes"/> exceed <see cref="AvailableBytes"/>: the
    /// message says what needs the memory (<paramref name="what"/>), how much is needed and available, and what to
    /// change (<paramref name="remedy"/>).
    /// </summary>
    public static void Require(long bytes, string what, string remedy)
    {
        long available = AvailableBytes();
        if (bytes > available)
            throw new DiffuseException($"{what} needs about {Format(bytes)} of memory but {Format(available)} is available; {remedy}.");
    }

    /// <summary>
    /// An estimate of the float32 activations one example keeps alive in a network of <paramref name="network"/>'s shape
    /// on data of <paramref name="exampleShape"/>, in bytes. Sampling keeps about one layer's activations at a time,
    /// training keeps every layer's for the backward pass (with their gradients): the estimate counts every layer's
    /// output, times 3 for training. It errs on the large side, within a small factor of what libtorch allocates.
    /// </summary>
    public static long ActivationBytesPerExample(NetworkConfig network, long[] exampleShape, bool training)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(exampleShape);
        double floats;
        switch (network)
        {
            case MlpConfig mlp:
                // Per block: norm, fc1, time projection, SiLU, fc2 and the residual sum, each [width].
                floats = (mlp.Depth * 6.0 + 4) * mlp.Width + 4.0 * mlp.Dimensions * mlp.OutputMultiplier;
                break;
            case UNetConfig unet when exampleShape.Length == 3:
                double pixels = (double)exampleShape[1] * exampleShape[2];
                floats = 4.0 * exampleShape[0] * pixels;
                for (int level = 0; level < unet.Levels; level++)
                {
                    double channels = unet.LevelChannels(level), area = pixels / Math.Pow(4, level);
                    // Per residual block about 8 feature maps (norms, convs, SiLU, sums, skip), both ways; the kept skips;
                    // attention's [HW, HW] weights per head where the level has it.
                    double perBlock = 8 * channels * area + (unet.HasAttention(level) ? unet.Heads * area * area + 4 * channels * area : 0);
                    floats += (2 * unet.BlocksPerLevel + 1) * perBlock + (unet.BlocksPerLevel + 1) * channels * area;
                }
                break;
            default:
                floats = 16.0 * exampleShape.Aggregate(1.0, (a, b) => a * b);
                break;
        }
        double bytes = floats * sizeof(float) * (training ? 3 : 1);
        return bytes >= long.MaxValue / 4 ? long.MaxValue / 4 : (long)bytes;
    }

    /// <summary>A byte count for messages: "512 MB", "4.2 GB".</summary>
    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.#} GB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0} MB",
        _ => $"{bytes / 1024.0:0} kB",
    };

    private static long? MemAvailable()
    {
        try
        {
            if (!OperatingSystem.IsLinux()) return null;
            foreach (string line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
                }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
        }
        return null;
    }
}
