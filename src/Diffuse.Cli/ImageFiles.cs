using Diffuse.Imaging;
using static TorchSharp.torch;

namespace Diffuse.Cli;

/// <summary>Writes single images.</summary>
public static class ImageFiles
{
    /// <summary>Writes one uint8 image [C, H, W] as a PNG of exactly its pixels (grayscale or RGB), atomically.</summary>
    public static void SavePng(string path, Tensor image)
    {
        using var scope = NewDisposeScope();
        int c = (int)image.shape[0], h = (int)image.shape[1], w = (int)image.shape[2];
        var unit = image.to_type(ScalarType.Float32).div(255).contiguous().data<float>().ToArray();
        Figures.SaveImageGrid(path, unit, 1, c, h, w, 1, padding: 0);
    }
}
