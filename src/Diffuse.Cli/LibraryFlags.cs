namespace Diffuse.Cli;

/// <summary>
/// The command line's words for the library's names in <see cref="DiffuseException"/> messages (see <see cref="Param"/>):
/// the flag that sets each parameter, the command that runs each method. The library says
/// "TrainingConfig.Steps must be at least 1 (got 0)."; the command line prints "error: --steps must be at least 1 (got 0).".
/// Every name the library's messages use is listed here (a test checks it); a null entry would keep the library's words
/// for a parameter that no flag sets.
/// </summary>
public static class LibraryFlags
{
    /// <summary>Library name → the command line's words; <c>{0}</c> stands for the marker's argument.</summary>
    public static IReadOnlyDictionary<string, string?> Table { get; } = new Dictionary<string, string?>(StringComparer.Ordinal)
    {
        ["TrainingConfig.Steps"] = "--steps",
        ["ImageEvaluationSets.Prepare(data)"] = "--data",
        ["ImageEvaluationSets.Prepare(features)"] = "--features",
        ["ImageEvaluationSets.Prepare(count)"] = "--count",
        ["ImageSources.Load(readFolder)"] = null,
        ["TrainingConfig.BatchSize"] = "--batch",
        ["TrainingConfig.LearningRate"] = "--lr",
        ["TrainingConfig.EmaDecay"] = "--ema",
        ["TrainingConfig.MinSnrGamma"] = "--min-snr",
        ["TrainingConfig.GradientAccumulation"] = "--accumulate",
        ["TrainingConfig.LabelDropout"] = "--label-dropout",
        ["TrainingConfig.CheckpointEvery"] = "--checkpoint-every",
        ["MlpConfig.Width"] = "--width",
        ["MlpConfig.Depth"] = "--depth",
        ["MlpConfig.Dimensions"] = "the data's columns",
        ["MlpConfig.TimeEmbedding"] = null,
        ["UNetConfig.Channels"] = "the images' channels",
        ["UNetConfig.BaseChannels"] = "--channels",
        ["UNetConfig.ChannelMultipliers"] = "--channel-mult",
        ["UNetConfig.BlocksPerLevel"] = "--blocks",
        ["UNetConfig.Heads"] = null,
        ["UNetConfig.TimeEmbedding"] = null,
        ["UNetConfig.NumClasses"] = "the data's classes",
        ["ScheduleConfig.Timesteps"] = "--timesteps",
        ["ScheduleConfig.Kind"] = "--schedule",
        ["ScheduleConfig.ZeroTerminalSnr"] = "--zero-terminal-snr",
        ["DiffusionModelConfig.Prediction"] = "--prediction",
        ["FormulationConfig.Kind = FormulationKind.Ddpm"] = "--formulation ddpm",
        ["FormulationConfig.Kind = FormulationKind.Ddpm"] = "--formulation ddpm",
        ["FormulationConfig.Kind = FormulationKind.Edm"] = "--formulation edm",
        ["FormulationConfig.Kind = FormulationKind.Flow"] = "--formulation flow",
        ["FormulationConfig.LearnedVariance"] = "--learn-variance",
        ["FormulationConfig.HybridLambda"] = "--hybrid-lambda",
        ["Trainer.Create(data)"] = "--data",
        ["Trainer.Resume"] = "--resume",
        ["Trainer.Resume(data)"] = "--data",
        ["Trainer.Resume(images)"] = "--data",
        ["EmojiDatasets.Load(size)"] = "--size",
        ["Trainer.Run"] = "'diffuse train'",
        ["Trainer.Run(folder)"] = "--out",
        ["TabularSource.Split(fraction) = 0"] = "--holdout 0",
        ["DiffusionModel.Sample(classes)"] = "--class",
        ["SamplerNames.Parse(name)"] = "--sampler",
        ["SamplerSpacings.Parse(name)"] = "--spacings",
        ["SamplerOptions.Steps"] = "--steps",
        ["SamplerOptions.Eta"] = "--eta",
        ["SamplerOptions.Rho"] = "--rho",
        ["SamplerOptions.Spacing"] = "--spacing",
        ["SamplerOptions.Variance"] = "--variance",
        ["SamplerOptions.SigmaList"] = "--sigmas",
        ["SamplerBenchmark.Run"] = "'diffuse bench-samplers'",
        ["SamplerBenchmarkOptions.Budgets"] = "--budgets",
        ["SamplerBenchmarkOptions.Samplers"] = "--samplers",
        ["SamplerBenchmarkOptions.Spacings"] = "--spacings",
        ["SamplerBenchmarkOptions.Count"] = "--count",
        ["SamplerBenchmarkOptions.Guidance"] = "--guidance",
        ["SamplerBenchmarkOptions.ReferenceSteps"] = "--reference-steps",
        ["SamplerBenchmarkOptions.OdeLimitSteps"] = "--ode-limit-steps",
        ["SamplerRecord.Choose(nfe)"] = "--nfe",
        ["TorchThreads.Fixed"] = "--threads",
        ["SamplerRecord.Save"] = "'diffuse bench-samplers --model {0}'",
        ["ImageToImage.Run(strength)"] = "--strength",
        ["RePaintSchedule.Resample"] = "--resample",
        ["RePaintSchedule.Jump"] = "--jump",
        ["Interpolation.Path(frames)"] = "--frames",
        ["Inversion.Decode(model)"] = "--model {0}",
    };

    /// <summary>The message of <paramref name="error"/> in the command line's words.</summary>
    public static string Message(DiffuseException error) => error.Render(name => Table.GetValueOrDefault(name));
}
