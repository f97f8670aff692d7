using Diffuse.Training;

namespace Diffuse.Cli.Commands;

// Training with a progress bar, preview grids and loss pictures: shared by train, demo and the self-test.
public sealed partial class TrainCommand
{
    /// <summary>Runs the trainer with a progress bar, then writes the loss curve (rank 0 only: other ranks' output is silenced).</summary>
    public static void TrainWithProgress(Trainer trainer, string folder, CancellationToken cancellationToken,
        Action<Trainer, TrainingProgress>? afterStep = null, int? stopAtStep = null, int? previewEvery = null)
    {
        bool images = trainer.Config.Data.IsImage;
        if (previewEvery is { } every) trainer.PreviewEvery = every;
        EventHandler<PreviewEventArgs> writePreview = (_, e) => Previews.Write(folder, e);
        if (images) trainer.PreviewReady += writePreview;
        try
        {
            using var bar = new ProgressBar("train", trainer.Config.Training.Steps, "step");
            bar.Report(trainer.Step);
            trainer.Run(p =>
            {
                string quartiles = images ? " by t-quarter " + string.Join("/", p.QuartileLosses.Select(q => q.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture))) : "";
                bar.Report(p.Step, $"loss {Parse.F(p.SmoothedLoss)}{quartiles} lr {p.LearningRate:0.0e0}");
                afterStep?.Invoke(trainer, p);
            }, folder, cancellationToken, stopAtStep);
        }
        finally
        {
            trainer.PreviewReady -= writePreview;
        }
        if (trainer.Collective.Rank == 0)
        {
            Pictures.LossCurve(Path.Combine(folder, "loss.png"), trainer.Losses);
            if (images) Pictures.QuartileLossCurve(Path.Combine(folder, "loss-by-timestep.png"), trainer.Losses, trainer.QuartileLosses);
        }
    }
}
