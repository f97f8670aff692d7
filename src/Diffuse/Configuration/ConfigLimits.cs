namespace Diffuse.Configuration;

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

    /// <summary>
    /// The names of config.json's fields for the library's parameter names: a config file's errors name the field to
    /// fix rather than the library type that holds it.
    /// </summary>
    internal static IReadOnlyDictionary<string, string> JsonFields { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["MlpConfig.Dimensions"] = "network.dimensions",
        ["MlpConfig.Width"] = "network.width",
        ["MlpConfig.Depth"] = "network.depth",
        ["MlpConfig.TimeEmbedding"] = "network.timeEmbedding",
        ["UNetConfig.Channels"] = "network.channels",
        ["UNetConfig.BaseChannels"] = "network.baseChannels",
        ["UNetConfig.ChannelMultipliers"] = "network.channelMultipliers",
        ["UNetConfig.BlocksPerLevel"] = "network.blocksPerLevel",
        ["UNetConfig.TimeEmbedding"] = "network.timeEmbedding",
        ["UNetConfig.NumClasses"] = "network.numClasses",
        ["UNetConfig.Heads"] = "network.heads",
        ["ScheduleConfig.Timesteps"] = "schedule.timesteps",
        ["TrainingConfig.Steps"] = "training.steps",
        ["TrainingConfig.BatchSize"] = "training.batchSize",
        ["TrainingConfig.LearningRate"] = "training.learningRate",
        ["TrainingConfig.EmaDecay"] = "training.emaDecay",
        ["TrainingConfig.MinSnrGamma"] = "training.minSnrGamma",
        ["TrainingConfig.GradientAccumulation"] = "training.gradientAccumulation",
        ["TrainingConfig.LabelDropout"] = "training.labelDropout",
        ["TrainingConfig.CheckpointEvery"] = "training.checkpointEvery",
        ["ScheduleConfig.Kind"] = "schedule.kind",
        ["ScheduleConfig.ZeroTerminalSnr"] = "schedule.zeroTerminalSnr",
        ["DiffusionModelConfig.Prediction"] = "prediction",
        ["FormulationConfig.LearnedVariance"] = "formulation.learnedVariance",
        ["FormulationConfig.HybridLambda"] = "formulation.hybridLambda",
    };

    /// <summary>
    /// Checks the data description of a config.json: every per-column array as long as the columns, every statistic
    /// finite (standard deviations positive, minima at most maxima), the image shape and class names within the limits.
    /// Messages name the field as written in the file.
    /// </summary>
    internal static void ValidateData(DataDescription data)
    {
        if (data.Source is null) throw new DiffuseException("data.source is missing: the config must name the training data.");
        if (data.Columns is null || data.Mean is null || data.Std is null)
            throw new DiffuseException("data.columns, data.mean and data.std must be arrays (empty for images).");
        if (data.Count < 0) throw new DiffuseException($"data.count must be zero or more (got {data.Count}).");
        if (!(data.Holdout >= 0 && data.Holdout < 1)) throw new DiffuseException($"data.holdout must lie in [0, 1) (got {data.Holdout}).");
        if (data.ImageShape is { } shape)
        {
            if (shape.Length != 3) throw new DiffuseException($"data.imageShape must be [channels, height, width] (got {shape.Length} values).");
            Check("data.imageShape[0] (channels)", shape[0], MaxChannels);
            Check("data.imageShape[1] (height)", shape[1], MaxImageSide);
            Check("data.imageShape[2] (width)", shape[2], MaxImageSide);
        }
        else
        {
            int columns = data.Columns.Length;
            Check("the length of data.columns", columns, MaxColumns);
            if (data.Columns.Any(c => c is null)) throw new DiffuseException("data.columns holds a null name; every column needs a name.");
            RequireLength("data.mean", data.Mean, columns);
            RequireLength("data.std", data.Std, columns);
            for (int d = 0; d < columns; d++)
            {
                if (!double.IsFinite(data.Mean[d])) throw new DiffuseException($"data.mean[{d}] is {data.Mean[d]}, not a finite number.");
                if (!(data.Std[d] > 0) || !double.IsFinite(data.Std[d]))
                    throw new DiffuseException($"data.std[{d}] is {data.Std[d]}; a standard deviation must be a positive finite number.");
            }
            if (data.Min is not null) RequireLength("data.min", data.Min, columns);
            if (data.Max is not null) RequireLength("data.max", data.Max, columns);
            if (data.Min is { } min && data.Max is { } max)
                for (int d = 0; d < columns; d++)
                    if (!double.IsFinite(min[d]) || !double.IsFinite(max[d]) || min[d] > max[d])
                        throw new DiffuseException($"data.min[{d}] = {min[d]} and data.max[{d}] = {max[d]} are not a range (finite, min ≤ max).");
            if (data.Min is null != data.Max is null)
                throw new DiffuseException($"data.{(data.Min is null ? "max" : "min")} is given without data.{(data.Min is null ? "min" : "max")}; give both or neither.");
        }
        if (data.ClassNames is { } names)
        {
            Check("the length of data.classNames", names.Length, MaxClasses);
            if (names.Any(n => n is null)) throw new DiffuseException("data.classNames holds a null name; every class needs a name.");
        }
    }

    private static void Check(string field, long value, long max)
    {
        if (value < 1 || value > max) throw new DiffuseException($"{field} is {value}, outside 1 … {max:N0}.");
    }

    private static void RequireLength(string field, double[] values, int columns)
    {
        if (values.Length != columns)
            throw new DiffuseException($"{field} has {values.Length} values but data.columns has {columns}; give one value per column.");
    }
}
