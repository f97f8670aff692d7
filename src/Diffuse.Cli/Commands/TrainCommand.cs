using System.ComponentModel;
using Diffuse.Data;
using Diffuse.Distributed;
using Diffuse.Models;
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
    [Description("A built-in 2-D distribution (swissroll, moons, 8gaussians, checkerboard, rings, pinwheel) or a numeric CSV file with a header row.")]
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
    [Description("Noise schedule: linear (default), cosine or sigmoid.")]
    public string Schedule { get; init; } = "linear";

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

    /// <summary>Checkpoint interval.</summary>
    [CommandOption("--checkpoint-every <N>")]
    [Description("Steps between checkpoints (default 1000; the last step is always saved).")]
    public int? CheckpointEvery { get; init; }
}

/// <summary><c>diffuse train</c>; under <c>mpiexec -n N</c> data-parallel over N processes, rank 0 writing.</summary>
public sealed class TrainCommand : Command<TrainSettings>
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
        if (string.IsNullOrWhiteSpace(settings.Data)) throw new DiffuseException("--data is required: a built-in distribution or a CSV file.");
        if (string.IsNullOrWhiteSpace(settings.Out)) throw new DiffuseException("--out is required: the folder to write the model to.");
        settings.ApplyThreads();
        using var trainer = Build(settings);
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
        TrainWithProgress(trainer, settings.Out, cancellationToken, afterStep, stopAtStep);
        var lastLoss = trainer.Losses.Count > 0 ? trainer.Losses[^1].Loss : double.NaN;
        CliContext.Out.WriteLine($"trained {trainer.Step} steps on {trainer.Config.Data.Source} ({trainer.Config.Data.Count} rows × {trainer.Config.Network.Dimensions} columns); final loss {Parse.F(lastLoss)}");
        CliContext.Out.WriteLine($"model written to {Path.GetFullPath(settings.Out)}");
        return 0;
    }

    private static Trainer Build(TrainSettings s)
    {
        var collective = CliContext.Collective;
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
            bool exists = collective.Rank == 0 && File.Exists(Path.Combine(s.Out!, Trainer.ConfigFile));
            if (s.Resume)
            {
                if (collective.Rank == 0 && !exists)
                    throw new DiffuseException($"--resume: '{s.Out}' holds no run to resume (no config.json). Drop --resume to start a new run.");
                return Trainer.Resume(s.Out!, train, s.Steps, collective);
            }
            if (exists)
                throw new DiffuseException($"'{s.Out}' already holds a model; pass --resume to continue it, or choose another --out (nothing was overwritten).");
            var defaults = new TrainingConfig();
            var training = new TrainingConfig(
                Steps: s.Steps ?? defaults.Steps,
                BatchSize: s.Batch ?? defaults.BatchSize,
                LearningRate: s.LearningRate ?? defaults.LearningRate,
                MinSnrGamma: s.MinSnr,
                Seed: s.Seed,
                CheckpointEvery: s.CheckpointEvery ?? defaults.CheckpointEvery);
            var network = new MlpConfig((int)train.shape[1]);
            network = network with { Width = s.Width ?? network.Width, Depth = s.Depth ?? network.Depth };
            return Trainer.Create(train, data.Source, training, new ScheduleConfig(Parse.Schedule(s.Schedule), s.Timesteps, ZeroTerminalSnr: s.ZeroTerminalSnr),
                Parse.Prediction(s.Prediction), network, data.Columns, holdout, collective);
        }
        finally
        {
            split?.Dispose();
        }
    }

    /// <summary>Runs the trainer with a progress bar, then writes the loss curve (rank 0 only: other ranks' output is silenced).</summary>
    public static void TrainWithProgress(Trainer trainer, string folder, CancellationToken cancellationToken,
        Action<Trainer, TrainingProgress>? afterStep = null, int? stopAtStep = null)
    {
        using (var bar = new ProgressBar("train", trainer.Config.Training.Steps, "step"))
        {
            bar.Report(trainer.Step);
            trainer.Run(p =>
            {
                bar.Report(p.Step, $"loss {Parse.F(p.SmoothedLoss)} lr {p.LearningRate:0.0e0}");
                afterStep?.Invoke(trainer, p);
            }, folder, cancellationToken, stopAtStep);
        }
        if (trainer.Collective.Rank == 0) Pictures.LossCurve(Path.Combine(folder, "loss.png"), trainer.Losses);
    }
}
