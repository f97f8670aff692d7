using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Diffuse.IO;
using Diffuse.Training;
using Spectre.Console.Cli;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of the hidden <c>diffuse mpi-selftest</c>: those of <c>train</c> plus test instruments.</summary>
public sealed class MpiSelfTestSettings : TrainSettings
{
    /// <summary>Folder for per-rank checksum files.</summary>
    [CommandOption("--checksums <DIR>")]
    [Description("Every rank writes DIR/rank<r>.txt: its state checksum at the start and after every step, with loss and gradient norm.")]
    public string? Checksums { get; init; }

    /// <summary>Stop early like an interrupted run.</summary>
    [CommandOption("--stop-at <STEP>")]
    [Description("Stop after this step, as an interrupted run would (the schedule still spans --steps).")]
    public int? StopAt { get; init; }

    /// <summary>Rank that fails.</summary>
    [CommandOption("--fail-rank <R>")]
    [Description("The rank that fails at --fail-step.")]
    public int FailRank { get; init; } = -1;

    /// <summary>Step after which it fails.</summary>
    [CommandOption("--fail-step <K>")]
    [Description("The step after which --fail-rank fails.")]
    public int FailStep { get; init; } = -1;

    /// <summary>How it fails.</summary>
    [CommandOption("--fail-mode <MODE>")]
    [Description("throw (an error, as a bad input would raise) or kill (the process dies at once, as if killed).")]
    public string FailMode { get; init; } = "throw";

    /// <summary>A checkpoint-write boundary at which the process kills itself.</summary>
    [CommandOption("--kill-at <POINT>")]
    [Description("POINT[:N]: the process kills itself (SIGKILL) at the Nth (default 1st) time a checkpoint write reaches POINT: weights-written, resume-written, loss-written, config-written, committed, weights-renamed, resume-renamed or loss-renamed.")]
    public string? KillAt { get; init; }
}

/// <summary>
/// Hidden <c>diffuse mpi-selftest</c>: runs <c>diffuse train</c>'s exact code path with instruments for the
/// multi-process tests: per-rank state checksums after every step, an early stop, and a failure injected on one rank.
/// </summary>
public sealed class MpiSelfTestCommand : Command<MpiSelfTestSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, MpiSelfTestSettings settings, CancellationToken cancellationToken)
    {
        if (settings.FailMode is not ("throw" or "kill")) throw new DiffuseException($"--fail-mode must be throw or kill (got '{settings.FailMode}').");
        int rank = CliContext.Collective.Rank;
        ProbeNullReference();
        if (settings.KillAt is { } killAt)
        {
            var parts = killAt.Split(':');
            int occurrence = parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : 1, seen = 0;
            Diffuse.Checkpoints.ModelFolder.FaultPoint = point =>
            {
                if (point == parts[0] && ++seen == occurrence) Process.GetCurrentProcess().Kill();
            };
        }
        var lines = new List<string>();
        void BeforeTraining(Trainer trainer)
        {
            if (settings.Checksums is not null) lines.Add($"start {trainer.Step} {trainer.StateChecksum()}");
        }
        void AfterStep(Trainer trainer, TrainingProgress p)
        {
            if (settings.Checksums is not null)
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"{p.Step} {trainer.StateChecksum()} {p.Loss:R} {p.GradientNorm:R}"));
            if (rank == settings.FailRank && p.Step == settings.FailStep)
            {
                if (settings.FailMode == "kill") Process.GetCurrentProcess().Kill();
                throw new DiffuseException($"injected failure after step {p.Step} (mpi-selftest --fail-rank {rank} --fail-step {p.Step}).");
            }
        }
        int code = TrainCommand.Train(settings, cancellationToken, BeforeTraining, AfterStep, settings.StopAt);
        if (settings.Checksums is not null)
            AtomicFile.WriteAllText(Path.Combine(settings.Checksums, $"rank{rank}.txt"), string.Join('\n', lines) + "\n");
        return code;
    }

    /// <summary>
    /// .NET turns a null dereference (SIGSEGV) into an exception; an MPI library that installs its own handler for that
    /// signal (UCX does, unless told not to) kills the process instead. Every self-test run checks it still works.
    /// </summary>
    private static void ProbeNullReference()
    {
        try
        {
            _ = Nothing()!.Length;
        }
        catch (NullReferenceException)
        {
            return;
        }
        throw new InvalidOperationException("a null dereference raised no NullReferenceException.");
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static string? Nothing() => null;
}
