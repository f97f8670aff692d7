using System.Globalization;

namespace Diffuse.Runtime;

/// <summary>
/// The number of CPU threads libtorch uses for one operation, chosen by the kind of model unless the application fixes
/// it. libtorch's own default (every core) made a small MLP 5–7× slower than one thread on a 2-core machine, where the
/// threads only synchronise, while image U-Nets, whose convolutions scale, ran 1.8× faster on two threads than on one
/// (docs/benchmarks.md). Training, sampling and evaluation apply the choice when they start (the setting is
/// process-wide in libtorch, so it is changed only when it differs from the current one).
/// </summary>
public static class TorchThreads
{
    private static int? _fixed;

    /// <summary>The environment variable that fixes the thread count for every model (a positive whole number).</summary>
    public const string EnvironmentVariable = "DIFFUSE_THREADS";

    /// <summary>
    /// A thread count fixed by the application for every model, or null (the default) for the automatic choice of
    /// <see cref="DefaultFor"/>. A process that serves table and image models at the same time should fix it, so that
    /// libtorch's pools are not rebuilt between requests.
    /// </summary>
    /// <exception cref="DiffuseException">The value is below 1.</exception>
    public static int? Fixed
    {
        get => _fixed;
        set
        {
            if (value is < 1) throw new DiffuseException($"{Param.Of("TorchThreads.Fixed")} must be at least 1 (got {value}).");
            _fixed = value;
        }
    }

    /// <summary>
    /// The automatic thread count: <see cref="EnvironmentVariable"/> when set, else 1 for tables and every core for
    /// images.
    /// </summary>
    /// <param name="imageModel">Whether the model works on images (a U-Net) rather than table rows (an MLP).</param>
    /// <exception cref="DiffuseException">The environment variable does not hold a positive whole number.</exception>
    public static int DefaultFor(bool imageModel) => FromEnvironment() ?? (imageModel ? Environment.ProcessorCount : 1);

    /// <summary>The thread count training, sampling and evaluation of such a model use: <see cref="Fixed"/>, else <see cref="DefaultFor"/>.</summary>
    /// <param name="imageModel">Whether the model works on images.</param>
    public static int For(bool imageModel) => Fixed ?? DefaultFor(imageModel);

    /// <summary>Sets libtorch's thread count to <see cref="For"/> when it differs (the setting is process-wide).</summary>
    /// <param name="imageModel">Whether the model works on images.</param>
    public static void Apply(bool imageModel) => Set(For(imageModel));

    /// <summary>
    /// Sets libtorch's intra-op thread count only when it changes: the setting is process-wide and rebuilds libtorch's
    /// thread pools, so a host that works on several threads must not see it set while its own tensor work is under way.
    /// </summary>
    /// <param name="threads">The thread count, at least 1.</param>
    public static void Set(int threads)
    {
        if (threads < 1) throw new DiffuseException($"{Param.Of("TorchThreads.Fixed")} must be at least 1 (got {threads}).");
        if (TorchSharp.torch.get_num_threads() != threads) TorchSharp.torch.set_num_threads(threads);
    }

    /// <summary>The thread count given by <see cref="EnvironmentVariable"/>, or null when it is not set.</summary>
    /// <exception cref="DiffuseException">The variable does not hold a positive whole number.</exception>
    public static int? FromEnvironment()
    {
        string? value = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(value)) return null;
        if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1) return n;
        throw new DiffuseException($"{EnvironmentVariable} must be a positive whole number (got '{value}'); unset it to use the default.");
    }
}
