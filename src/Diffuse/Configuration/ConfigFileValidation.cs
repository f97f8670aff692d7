namespace Diffuse.Configuration;

/// <summary>
/// The checks of a config.json beyond the size limits of <see cref="ConfigLimits"/>: the data description's arrays and
/// statistics, and the names of the file's fields for the library's parameter names.
/// </summary>
internal static class ConfigFileValidation
{
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
            Check("data.imageShape[0] (channels)", shape[0], ConfigLimits.MaxChannels);
            Check("data.imageShape[1] (height)", shape[1], ConfigLimits.MaxImageSide);
            Check("data.imageShape[2] (width)", shape[2], ConfigLimits.MaxImageSide);
        }
        else
        {
            int columns = data.Columns.Length;
            Check("the length of data.columns", columns, ConfigLimits.MaxColumns);
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
            Check("the length of data.classNames", names.Length, ConfigLimits.MaxClasses);
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
