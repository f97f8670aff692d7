namespace Diffuse;

/// <summary>
/// The largest sizes a model configuration may ask for. They are checked when a configuration is validated, before any
/// tensor is allocated, so that a damaged or hostile config.json (a width of 10⁹, 10⁹ timesteps) fails in milliseconds
/// with one message instead of exhausting the machine's memory. Each limit is far above any model this library trains
/// (the shipped Fashion-MNIST U-Net has 32 base channels and 1,000 timesteps; the default MLP is 128 wide and 3 deep)
/// and far below what would overflow the arithmetic of the sizes.
/// </summary>
public static class ConfigLimits
{
    /// <summary>
    /// Timesteps T of a schedule: 100,000. The schedule holds a dozen double tables of T entries (10 MB at this limit);
    /// DDPM uses 1,000 and continuous-time practice up to a few thousand; ancestral sampling over 10⁵ steps already
    /// takes days on a CPU.
    /// </summary>
    public const int MaxTimesteps = 100_000;

    /// <summary>Columns of a table: 100,000 (a wider table is an image or a mistake).</summary>
    public const int MaxColumns = 100_000;

    /// <summary>Hidden width and time-embedding width of the MLP: 65,536 (one such layer alone holds 4·2³² bytes, 16 GiB).</summary>
    public const int MaxWidth = 65_536;

    /// <summary>Residual blocks of the MLP: 1,024.</summary>
    public const int MaxDepth = 1_024;

    /// <summary>Image side (height or width): 4,096, as the image-folder reader.</summary>
    public const int MaxImageSide = 4_096;

    /// <summary>Image channels: 64.</summary>
    public const int MaxChannels = 64;

    /// <summary>Channels of one U-Net level (base channels × multiplier) and of its time embedding: 16,384.</summary>
    public const int MaxLevelChannels = 16_384;

    /// <summary>U-Net levels: 12 (a 4,096-pixel side halved 12 times is one pixel).</summary>
    public const int MaxLevels = 12;

    /// <summary>Residual blocks per U-Net level: 64.</summary>
    public const int MaxBlocksPerLevel = 64;

    /// <summary>Classes of a class-conditional model: 1,000,000 (an embedding row each; ImageNet-21k has 21,841).</summary>
    public const int MaxClasses = 1_000_000;

    /// <summary>
    /// Network parameters: 2³⁰ (1,073,741,824 float32 values, 4 GiB). A model folder this large is far outside what
    /// this library trains on a CPU; a config that asks for more is refused before the network is built.
    /// </summary>
    public const long MaxParameters = 1L << 30;

    /// <summary>
    /// Throws when <paramref name="value"/> is outside [<paramref name="min"/>, <paramref name="max"/>], naming the
    /// parameter (<paramref name="parameter"/>, a <see cref="Param.Of(string)"/> marker) and the limit.
    /// </summary>
    internal static void Require(string parameter, long value, long min, long max, string? why = null)
    {
        if (value < min)
            throw new DiffuseException($"{parameter} must be at least {min} (got {value}).");
        if (value > max)
            throw new DiffuseException($"{parameter} is {value:N0}, above the limit of {max:N0}{(why is null ? "" : $" ({why})")}; use a smaller value.");
    }

    /// <summary>Throws when a network of <paramref name="count"/> parameters exceeds <see cref="MaxParameters"/>.</summary>
    internal static void RequireParameters(long count, string network, string remedy)
    {
        if (count > MaxParameters)
            throw new DiffuseException($"{network} has {count:N0} parameters, above the limit of {MaxParameters:N0} (4 GiB of float32); use {remedy}.");
    }
}
