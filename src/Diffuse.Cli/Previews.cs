using Diffuse.Training;

namespace Diffuse.Cli;

/// <summary>
/// Preview grids written while an image model trains (<see cref="Trainer.PreviewReady"/>: the same seeds every time,
/// one row per class for a conditional model, 20 DPM-Solver++(2M) steps from the EMA weights).
/// </summary>
public static class Previews
{
    /// <summary>Writes <c>previews/step-NNNNNN.png</c> in <paramref name="folder"/> and returns its path.</summary>
    public static string Write(string folder, PreviewEventArgs preview)
    {
        string path = Path.Combine(folder, "previews", $"step-{preview.Step:D6}.png");
        Pictures.ImageGrid(path, preview.Images, preview.Columns, preview.RowLabels?.ToArray());
        return path;
    }
}
